/// What a source knows about a captured table: its name, columns and key.
///
/// Built once per Relation message (or catalog lookup) and shared by every event of that table,
/// so JSON fragments (escaped names) are prepared here instead of per event.
public final class RelationInfo: Sendable {
    public struct Column: Sendable {
        public let name: String
        public let typeOID: UInt32
        public let typeModifier: Int32
        /// Part of the replica identity as announced by the source.
        public let isIdentity: Bool
        public let mapping: PostgresType.Mapping
        /// `"name":` escaped, ready to append.
        let jsonKey: [UInt8]

        public init(name: String, typeOID: UInt32, typeModifier: Int32 = -1, isIdentity: Bool = false) {
            self.name = name
            self.typeOID = typeOID
            self.typeModifier = typeModifier
            self.isIdentity = isIdentity
            self.mapping = PostgresType.mapping(for: typeOID)
            var key: [UInt8] = []
            JSONBytes.appendString(name, into: &key)
            key.append(UInt8(ascii: ":"))
            self.jsonKey = key
        }
    }

    public enum ReplicaIdentity: UInt8, Sendable {
        case `default` = 0x64  // d
        case nothing = 0x6E  // n
        case full = 0x66  // f
        case index = 0x69  // i
    }

    public let oid: UInt32
    public let schema: String
    public let table: String
    public let replicaIdentity: ReplicaIdentity
    public let columns: [Column]
    /// Columns that make up the event `key`, as indexes into `columns`.
    public let keyColumns: [Int]
    /// For a TimescaleDB chunk: the chunk's qualified name (schema/table then name the hypertable).
    public let chunk: String?
    /// Changes of this relation are not reported (e.g. continuous-aggregate materialisation with
    /// `continuous_aggregates: drop`).
    public let isSuppressed: Bool
    /// One of TimescaleDB's catalog tables pgbridge reads from the stream (chunk deletes are
    /// retention, `chunk_dropped`); its changes are never reported as row changes.
    public let timescaleCatalog: TimescaleCatalogTable?

    /// `"schema":"…","table":"…"` (and `"chunk":"…"`), escaped.
    let sourceNameJSON: [UInt8]
    /// Every column's `"name":` one after another (column `i`'s ends at `jsonKeyEnds[i]`) and
    /// every column's mapping: what the encoder reads per value, without copying a `Column`.
    let jsonKeys: [UInt8]
    let jsonKeyEnds: [Int]
    let mappings: [PostgresType.Mapping]

    /// - Parameter primaryKey: the table's primary-key column names when known. Used for the
    ///   event key when the replica identity is FULL (every column is then flagged as identity).
    public init(
        oid: UInt32, schema: String, table: String, replicaIdentity: ReplicaIdentity,
        columns: [Column], primaryKey: [String]? = nil, chunk: String? = nil, isSuppressed: Bool = false,
        timescaleCatalog: TimescaleCatalogTable? = nil
    ) {
        self.isSuppressed = isSuppressed
        self.timescaleCatalog = timescaleCatalog
        self.oid = oid
        self.schema = schema
        self.table = table
        self.replicaIdentity = replicaIdentity
        self.columns = columns
        self.chunk = chunk
        let flagged = columns.indices.filter { columns[$0].isIdentity }
        if let primaryKey, !primaryKey.isEmpty,
            replicaIdentity == .full || replicaIdentity == .nothing || flagged.isEmpty
        {
            let byName = primaryKey.compactMap { name in columns.firstIndex { $0.name == name } }
            self.keyColumns = byName.count == primaryKey.count ? byName : flagged
        } else {
            self.keyColumns = flagged
        }
        var fragment: [UInt8] = []
        JSONBytes.appendRaw("\"schema\":", into: &fragment)
        JSONBytes.appendString(schema, into: &fragment)
        JSONBytes.appendRaw(",\"table\":", into: &fragment)
        JSONBytes.appendString(table, into: &fragment)
        if let chunk {
            JSONBytes.appendRaw(",\"chunk\":", into: &fragment)
            JSONBytes.appendString(chunk, into: &fragment)
        }
        self.sourceNameJSON = fragment
        var keys: [UInt8] = []
        var ends: [Int] = []
        for column in columns {
            keys.append(contentsOf: column.jsonKey)
            ends.append(keys.count)
        }
        self.jsonKeys = keys
        self.jsonKeyEnds = ends
        self.mappings = columns.map(\.mapping)
    }

    /// Column `index`'s `"name":` in `keys` (this relation's `jsonKeys`).
    @inline(__always)
    func jsonKey(_ index: Int, in keys: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: keys[(index == 0 ? 0 : jsonKeyEnds[index - 1])..<jsonKeyEnds[index]])
    }

    public var qualifiedName: String { "\(schema).\(table)" }
}

/// TimescaleDB catalog tables whose rows pgbridge reads from the stream.
public enum TimescaleCatalogTable: Sendable, Equatable {
    /// `_timescaledb_catalog.chunk`: inserted (with hypertable id and name) in the transaction
    /// that creates a chunk, deleted by `drop_chunks`.
    case chunk
    /// `_timescaledb_catalog.dimension_slice`: a chunk's range per dimension (2.28 rows carry the
    /// chunk's id; older versions link slices through `chunk_constraint`, which has no key).
    case dimensionSlice

    public static func named(schema: String, table: String) -> TimescaleCatalogTable? {
        guard schema == "_timescaledb_catalog" else { return nil }
        switch table {
        case "chunk": return .chunk
        case "dimension_slice": return .dimensionSlice
        default: return nil
        }
    }
}
