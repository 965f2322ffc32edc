import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PostgresClient

/// `GET {rest_path}/`: an OpenAPI 3 description of the tables, views and functions of the
/// profile's schema that the caller's role may use, as PostgREST describes its root
/// (privileges are followed: the catalog is read as the request's role).
extension TableRoutes {
    func openAPI(_ request: Request, mount: String) async throws -> Response {
        let identity = try await auth.identify(authorization: request.headers[.authorization], write: false)
        let schema = try profileSchema(request, write: false)
        let settings = settings(identity, request)
        let described: (tables: String?, functions: String?)
        do {
            let result = try await pool.withSession(timeout: .seconds(10)) { session in
                try await session.run { connection in
                    let results = try Self.transaction(
                        connection, settings, relations: [], readOnly: true,
                        [
                            SQLStatement(text: Self.tablesQuery, parameters: [schema]),
                            SQLStatement(text: Self.functionsQuery, parameters: [schema]),
                        ], finish: .commit)
                    return (results[0].string(0, 0), results[1].string(0, 0))
                }
            }
            guard let result else {
                throw RestError.busy
            }
            described = result
        } catch {
            throw await mapped(error, identity: identity, table: TableInfo(schema: schema, name: "", columns: []))
        }
        let document = Self.document(
            schema: schema, server: mount, tables: Self.decode(described.tables),
            functions: Self.decode(described.functions))
        let data = try JSONSerialization.data(
            withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(
            status: .ok, headers: [.contentType: "application/openapi+json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func decode(_ text: String?) -> [[String: Any]] {
        guard let text, let data = text.data(using: .utf8),
            let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        else { return [] }
        return list
    }

    static let tablesQuery = """
        SELECT coalesce(json_agg(t ORDER BY t.name), '[]')::text FROM (
          SELECT c.relname AS name, c.relkind IN ('v', 'm') AS view,
            obj_description(c.oid, 'pg_class') AS comment,
            (SELECT json_agg(json_build_object(
                'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
                'has_default', a.atthasdef, 'primary_key', coalesce(a.attnum = ANY(i.indkey), false),
                'comment', col_description(c.oid, a.attnum)) ORDER BY a.attnum)
             FROM pg_attribute a
             LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            has_table_privilege(c.oid, 'INSERT') AS insertable, has_table_privilege(c.oid, 'UPDATE') AS updatable,
            has_table_privilege(c.oid, 'DELETE') AS deletable
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND has_table_privilege(c.oid, 'SELECT')
        ) t
        """

    static let functionsQuery = """
        SELECT coalesce(json_agg(f ORDER BY f.name), '[]')::text FROM (
          SELECT p.proname AS name, p.provolatile <> 'v' AS read_only, obj_description(p.oid, 'pg_proc') AS comment,
            (SELECT json_agg(json_build_object('name', coalesce(p.proargnames[k.o], ''),
                                               'type', format_type(k.t, NULL)) ORDER BY k.o)
             FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) WITH ORDINALITY k(t, o)
             WHERE coalesce(p.proargmodes[k.o], 'i') IN ('i', 'b', 'v')) AS arguments
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = $1 AND p.prokind = 'f' AND has_function_privilege(p.oid, 'EXECUTE')
        ) f
        """

    /// A PostgreSQL type as a JSON schema.
    static func jsonSchema(_ type: String) -> [String: Any] {
        var schema: [String: Any] = ["format": type]
        if type.hasSuffix("[]") {
            schema["type"] = "array"
            schema["items"] = jsonSchema(String(type.dropLast(2)))
            return schema
        }
        switch type {
        case "smallint", "integer", "bigint": schema["type"] = "integer"
        case "real", "double precision": schema["type"] = "number"
        case let numeric where numeric.hasPrefix("numeric"): schema["type"] = "number"
        case "boolean": schema["type"] = "boolean"
        case "json", "jsonb": break  // any JSON value
        default: schema["type"] = "string"
        }
        return schema
    }

    static func document(schema: String, server: String, tables: [[String: Any]], functions: [[String: Any]])
        -> [String: Any]
    {
        var paths: [String: Any] = [:]
        var schemas: [String: Any] = [:]
        let error: [String: Any] = ["$ref": "#/components/responses/Error"]
        for table in tables {
            guard let name = table["name"] as? String else { continue }
            let columns = table["columns"] as? [[String: Any]] ?? []
            var properties: [String: Any] = [:]
            var required: [String] = []
            for column in columns {
                guard let columnName = column["name"] as? String else { continue }
                var property = jsonSchema(column["type"] as? String ?? "text")
                var notes: [String] = []
                if let comment = column["comment"] as? String { notes.append(comment) }
                if column["primary_key"] as? Bool == true { notes.append("Note: This is a Primary Key.<pk/>") }
                if !notes.isEmpty { property["description"] = notes.joined(separator: "\n\n") }
                properties[columnName] = property
                if column["not_null"] as? Bool == true, column["has_default"] as? Bool != true {
                    required.append(columnName)
                }
            }
            var definition: [String: Any] = ["type": "object", "properties": properties]
            if !required.isEmpty { definition["required"] = required }
            if let comment = table["comment"] as? String { definition["description"] = comment }
            schemas[name] = definition
            let rows: [String: Any] = [
                "description": "OK",
                "content": [
                    "application/json": [
                        "schema": ["type": "array", "items": ["$ref": "#/components/schemas/\(name)"]]
                    ]
                ],
            ]
            var item: [String: Any] = [
                "get": [
                    "tags": [name], "summary": table["comment"] as? String ?? "Rows of \(schema).\(name)",
                    "responses": ["200": rows, "206": rows, "400": error, "401": error, "403": error],
                ]
            ]
            let body: [String: Any] = [
                "content": ["application/json": ["schema": ["$ref": "#/components/schemas/\(name)"]]]
            ]
            if table["insertable"] as? Bool == true {
                item["post"] = [
                    "tags": [name], "requestBody": body,
                    "responses": ["201": ["description": "Created"], "400": error, "403": error, "409": error],
                ]
            }
            if table["updatable"] as? Bool == true {
                item["patch"] = [
                    "tags": [name], "requestBody": body,
                    "responses": ["200": rows, "204": ["description": "No Content"], "400": error, "403": error],
                ]
            }
            if table["deletable"] as? Bool == true {
                item["delete"] = [
                    "tags": [name],
                    "responses": ["200": rows, "204": ["description": "No Content"], "400": error, "403": error],
                ]
            }
            paths["/\(name)"] = item
        }
        for function in functions {
            guard let name = function["name"] as? String else { continue }
            let arguments = function["arguments"] as? [[String: Any]] ?? []
            var properties: [String: Any] = [:]
            for argument in arguments {
                guard let argumentName = argument["name"] as? String, !argumentName.isEmpty else { continue }
                properties[argumentName] = jsonSchema(argument["type"] as? String ?? "text")
            }
            let result: [String: Any] = ["description": "OK", "content": ["application/json": ["schema": [:]]]]
            var item: [String: Any] = [
                "post": [
                    "tags": ["(rpc) \(name)"], "summary": function["comment"] as? String ?? "Calls \(schema).\(name)",
                    "requestBody": [
                        "content": ["application/json": ["schema": ["type": "object", "properties": properties]]]
                    ],
                    "responses": ["200": result, "204": ["description": "No Content"], "400": error, "404": error],
                ]
            ]
            if function["read_only"] as? Bool == true {
                item["get"] = [
                    "tags": ["(rpc) \(name)"],
                    "parameters": properties.keys.sorted().map { key in
                        ["name": key, "in": "query", "required": false, "schema": properties[key]!]
                    },
                    "responses": ["200": result, "204": ["description": "No Content"], "400": error, "404": error],
                ]
            }
            paths["/rpc/\(name)"] = item
        }
        return [
            "openapi": "3.0.3",
            "info": [
                "title": "pgbridge REST proxy: schema \(schema)",
                "version": "1",
                "description": "PostgREST's API over the tables, views and functions the caller may use.",
            ],
            "servers": [["url": server]],
            "paths": paths,
            "components": [
                "schemas": schemas,
                "responses": [
                    "Error": [
                        "description": "An error in PostgREST's shape",
                        "content": [
                            "application/json": [
                                "schema": [
                                    "type": "object",
                                    "properties": [
                                        "code": ["type": "string"], "message": ["type": "string"],
                                        "details": ["type": "string", "nullable": true],
                                        "hint": ["type": "string", "nullable": true],
                                    ],
                                ]
                            ]
                        ],
                    ]
                ],
            ],
        ]
    }
}
