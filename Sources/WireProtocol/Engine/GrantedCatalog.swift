import BridgeCore

/// The tables one user may see: every lookup and listing goes through the user's grants, so a
/// table the user may not read does not exist for them (SELECT, EXPLAIN, IMPORT FOREIGN SCHEMA).
struct GrantedCatalog: ForeignCatalog {
    let base: any ForeignCatalog
    let grants: WireGrants

    var schemas: [String] { base.schemas }

    func tables(in schema: String) async -> [any ForeignTable] {
        await base.tables(in: schema).filter { canRead($0.name) }
    }

    func table(_ name: TableName) async -> (any ForeignTable)? {
        guard let table = await base.table(name), canRead(table.name) else { return nil }
        return table
    }

    func canRead(_ name: TableName) -> Bool {
        WireGrants.matches(grants.read, schema: name.schema ?? "", table: name.name)
    }

    func canWrite(_ name: TableName) -> Bool {
        WireGrants.matches(grants.write, schema: name.schema ?? "", table: name.name)
    }
}
