import BridgeCore

extension DeliveryPlan {
    /// The work for one target table.
    struct TableWork {
        var schema: String?
        var name: String
        /// The source table of its first event (for new columns' types and the loop check).
        var sourceSchema = ""
        var sourceTable = ""
        /// Column names of the events' `key`, in key order (from the first keyed event).
        var keyColumns: [String] = []
        /// Every column some row of the delivery has, in first-seen order.
        var columns: [String] = []
        var columnSet: Set<String> = []
        /// The escaped names of `columns`, compared with an event's keys before any String is made.
        var rawColumns: [[UInt8]] = []
        /// Distinct sets of unchanged TOAST columns; an event's `uset` is its index + 1.
        var unchangedSets: [[String]] = []
        /// The last truncate's seq and options (apply mode: events before it are superseded).
        var truncate: (seq: Int, cascade: Bool, restartIdentity: Bool)?
        /// `chunk_dropped` events: their seq and the dropped range.
        var droppedChunks: [(seq: Int, rangeStart: String, rangeEnd: String)] = []
        /// The rows to stage, in seq order.
        var staged: [Staged] = []
        var hasDeletes = false
        var hasUpserts = false
        /// Some key occurs twice (or a key changed): the last change per key must be picked.
        var repeatsKeys = false
        /// Hashes of the keys seen, to tell whether a key repeats (a collision only costs a sort).
        var keyHashes = KeyHashes()
        /// The `after` members of the staged events: value ranges and their index in `columns`.
        var memberValues: [Range<Int>] = []
        var memberColumns: [Int] = []

        var seqs: [Int] { staged.map(\.seq) }

        /// Only inserts, each key once: the rows can be copied straight into the target.
        var isInsertsOnly: Bool {
            !hasDeletes && !repeatsKeys && unchangedSets.isEmpty && staged.allSatisfy { $0.op == .insert }
        }

        /// Adds the object's member names to the columns.
        mutating func collectColumns(_ object: Range<Int>, scanner: JSONScanner) {
            var position = 0
            scanner.forEachMember(of: object) { key, _ in
                _ = column(key, scanner.bytes, hint: position)
                position += 1
                return true
            }
        }

        /// Room for `events` staged events (and their members, `columns` each).
        mutating func reserve(_ events: Int, columns: Int = 0) {
            staged.reserveCapacity(events)
            if columns > 0 {
                memberValues.reserveCapacity(events * columns)
                memberColumns.reserveCapacity(events * columns)
            }
        }

        /// Records the members of an event's `after` (read while its event was scanned) and adds
        /// their names to the columns; returns their indices for `Staged.members`.
        mutating func record(_ members: [(key: Range<Int>, value: Range<Int>)], _ bytes: UnsafeBufferPointer<UInt8>)
            -> Range<Int>
        {
            let start = memberValues.count
            if start == 0, staged.capacity > staged.count {
                reserve(staged.capacity, columns: members.count)
            }
            for (position, member) in members.enumerated() {
                memberColumns.append(column(member.key, bytes, hint: position))
                memberValues.append(member.value)
            }
            return start..<memberValues.count
        }

        /// The index in `columns` of the member named `key` (escaped contents), added when new.
        /// An event's n-th member is usually the n-th column seen: checked first.
        mutating func column(_ key: Range<Int>, _ bytes: UnsafeBufferPointer<UInt8>, hint: Int) -> Int {
            let raw = UnsafeBufferPointer(rebasing: bytes[key])
            if hint < rawColumns.count, rawColumns[hint].equals(raw) { return hint }
            if let index = rawColumns.firstIndex(where: { $0.equals(raw) }) { return index }
            let name = DeliveryPlan.name(key, JSONScanner(bytes))
            if !columnSet.insert(name).inserted, let index = columns.firstIndex(of: name) {
                // The same name spelled with other escapes.
                return index
            }
            columns.append(name)
            rawColumns.append(Array(raw))
            return columns.count - 1
        }

        mutating func noteKey(_ bytes: UnsafeBufferPointer<UInt8>) {
            if !keyHashes.insert(bytes) { repeatsKeys = true }
        }
    }
}
