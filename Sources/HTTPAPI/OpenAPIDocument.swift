/// The OpenAPI 3.1 description of the HTTP API, served at `/v1/openapi.json`. A test checks
/// that it validates and lists exactly the routes the server registers.
enum OpenAPIDocument {
    static let json = #"""
        {
          "openapi": "3.1.0",
          "info": {
            "title": "pgbridge HTTP API",
            "version": "1",
            "description": "Health, metrics, pipe management, the pull API over each pipe's recent change events, and a REST proxy over tables. See docs/http-api.md."
          },
          "paths": {
            "/healthz": {
              "get": {
                "operationId": "health", "summary": "The process is up.",
                "responses": {"200": {"description": "Up", "content": {"application/json": {"schema": {"type": "object"}}}}}
              }
            },
            "/readyz": {
              "get": {
                "operationId": "ready", "summary": "PostgreSQL is reachable and every running pipe is healthy.",
                "responses": {
                  "200": {"description": "Ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                  "503": {"description": "Not ready, with the problems", "content": {"application/json": {"schema": {"type": "object"}}}}
                }
              }
            },
            "/metrics": {
              "get": {
                "operationId": "metrics", "summary": "Prometheus metrics in the text exposition format.",
                "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}
              }
            },
            "/v1/openapi.json": {
              "get": {
                "operationId": "openapi", "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}
              }
            },
            "/v1/pipes": {
              "get": {
                "operationId": "listPipes", "summary": "Every pipe with its state and counters.", "security": [{"admin": []}],
                "responses": {
                  "200": {"description": "Pipes", "content": {"application/json": {"schema": {"type": "object", "properties": {"pipes": {"type": "array", "items": {"$ref": "#/components/schemas/Pipe"}}}}}}},
                  "401": {"$ref": "#/components/responses/Error"}
                }
              },
              "post": {
                "operationId": "createPipe", "summary": "Creates and starts a pipe (a pipes: entry of the configuration, as JSON); stored in pgbridge.pipes.",
                "security": [{"admin": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "source", "sinks"]}}}},
                "responses": {
                  "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pipe"}}}},
                  "400": {"$ref": "#/components/responses/Error"},
                  "401": {"$ref": "#/components/responses/Error"},
                  "409": {"$ref": "#/components/responses/Error"},
                  "422": {"$ref": "#/components/responses/Error"},
                  "503": {"$ref": "#/components/responses/Error"}
                }
              }
            },
            "/v1/pipes/{name}": {
              "parameters": [{"$ref": "#/components/parameters/PipeName"}],
              "get": {
                "operationId": "getPipe", "summary": "A pipe: state, confirmed LSN, lag bytes, counters per sink, last error.",
                "security": [{"admin": []}],
                "responses": {
                  "200": {"description": "The pipe", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pipe"}}}},
                  "404": {"$ref": "#/components/responses/Error"}
                }
              },
              "delete": {
                "operationId": "dropPipe", "summary": "Stops and drops a pipe created through the API.",
                "security": [{"admin": []}],
                "parameters": [{"name": "drop_slot", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}, "description": "Also drop its replication slot."}],
                "responses": {
                  "200": {"description": "Dropped", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pipe"}}}},
                  "404": {"$ref": "#/components/responses/Error"},
                  "409": {"$ref": "#/components/responses/Error"}
                }
              }
            },
            "/v1/pipes/{name}/start": {
              "parameters": [{"$ref": "#/components/parameters/PipeName"}],
              "post": {
                "operationId": "startPipe", "summary": "Starts a stopped pipe.", "security": [{"admin": []}],
                "responses": {
                  "200": {"description": "Running", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pipe"}}}},
                  "404": {"$ref": "#/components/responses/Error"}
                }
              }
            },
            "/v1/pipes/{name}/stop": {
              "parameters": [{"$ref": "#/components/parameters/PipeName"}],
              "post": {
                "operationId": "stopPipe", "summary": "Stops a pipe once what it captured is delivered and confirmed.", "security": [{"admin": []}],
                "responses": {
                  "200": {"description": "Stopped", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pipe"}}}},
                  "404": {"$ref": "#/components/responses/Error"}
                }
              }
            },
            "/v1/pipes/{name}/events": {
              "parameters": [{"$ref": "#/components/parameters/PipeName"}],
              "get": {
                "operationId": "pullEvents", "summary": "Pages through the pipe's recent events.", "security": [{"admin": []}],
                "parameters": [
                  {"name": "after", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Event id to continue after (the previous page's next)."},
                  {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}},
                  {"$ref": "#/components/parameters/Table"},
                  {"$ref": "#/components/parameters/Op"}
                ],
                "responses": {
                  "200": {"description": "A page", "content": {"application/json": {"schema": {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}, "next": {"type": ["string", "null"]}}}}}},
                  "404": {"$ref": "#/components/responses/Error"},
                  "410": {"$ref": "#/components/responses/Error"}
                }
              }
            },
            "/v1/tables": {
              "get": {
                "operationId": "describeTables", "summary": "An OpenAPI 3 description of the tables, views and functions of the profile's schema that the caller's role may use (PostgREST's root).",
                "security": [{"jwt": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/AcceptProfile"}],
                "responses": {
                  "200": {"description": "The description", "content": {"application/openapi+json": {"schema": {"type": "object"}}}},
                  "401": {"$ref": "#/components/responses/RestError"}, "403": {"$ref": "#/components/responses/RestError"},
                  "406": {"$ref": "#/components/responses/RestError"}, "503": {"$ref": "#/components/responses/RestError"}
                }
              }
            },
            "/v1/tables/{table}": {
              "parameters": [
                {"name": "table", "in": "path", "required": true, "schema": {"type": "string"}, "description": "A table or view of the profile's schema (Accept-Profile / Content-Profile among api.rest_schemas, default the first), or schema.table; double quotes around names with dots."}
              ],
              "get": {
                "operationId": "readRows", "summary": "Rows of a table, PostgREST's way: select (aliases, casts, JSON paths, aggregates), filters column=op.value, or/and trees, order, limit/offset or Range, Prefer: count; also bucket+agg.",
                "security": [{"jwt": []}, {}],
                "parameters": [
                  {"name": "select", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Columns, alias:column, column::type, data->a->>b, column.sum(), count()."},
                  {"name": "order", "in": "query", "required": false, "schema": {"type": "string"}, "description": "column[.asc|.desc][.nullsfirst|.nullslast], comma-separated."},
                  {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
                  {"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
                  {"name": "or", "in": "query", "required": false, "schema": {"type": "string"}, "description": "A logic tree, e.g. (id.lt.3,and(a.eq.1,b.gt.2))."},
                  {"name": "bucket", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Time bucket width, e.g. 5m (needs agg)."},
                  {"name": "agg", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Aggregates, e.g. avg(temp),max(temp)."},
                  {"name": "time_column", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Time column of bucket (default: the hypertable's time dimension)."},
                  {"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/AcceptProfile"},
                  {"name": "Range", "in": "header", "required": false, "schema": {"type": "string"}, "description": "first-last row numbers, e.g. 0-9."}
                ],
                "responses": {
                  "200": {"description": "A JSON array of rows, one object (Accept: application/vnd.pgrst.object+json) or CSV (Accept: text/csv)", "headers": {"Content-Range": {"$ref": "#/components/headers/ContentRange"}}, "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}, "application/vnd.pgrst.object+json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}},
                  "206": {"description": "Part of the rows a count found", "headers": {"Content-Range": {"$ref": "#/components/headers/ContentRange"}}, "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}},
                  "400": {"$ref": "#/components/responses/RestError"}, "401": {"$ref": "#/components/responses/RestError"},
                  "403": {"$ref": "#/components/responses/RestError"}, "404": {"$ref": "#/components/responses/RestError"},
                  "406": {"$ref": "#/components/responses/RestError"}, "416": {"$ref": "#/components/responses/RestError"},
                  "503": {"$ref": "#/components/responses/RestError"}
                }
              },
              "head": {
                "operationId": "countRows", "summary": "As GET without the body: Content-Range (and the count with Prefer: count=exact).",
                "security": [{"jwt": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/AcceptProfile"}],
                "responses": {
                  "200": {"description": "Headers only", "headers": {"Content-Range": {"$ref": "#/components/headers/ContentRange"}}},
                  "206": {"description": "Headers only, part of the rows", "headers": {"Content-Range": {"$ref": "#/components/headers/ContentRange"}}},
                  "400": {"description": "Bad request"}, "401": {"description": "No or a bad token"}, "403": {"description": "Refused"},
                  "404": {"description": "No such table"}, "406": {"description": "Not acceptable"}, "416": {"description": "Range not satisfiable"},
                  "503": {"description": "The database is not reachable"}
                }
              },
              "post": {
                "operationId": "insertRows", "summary": "Inserts an object or an array of objects (columns=, Prefer: missing=default); upserts with Prefer: resolution=merge-duplicates|ignore-duplicates and on_conflict=; answers with X-Commit-LSN.",
                "security": [{"jwt": []}],
                "parameters": [{"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/ContentProfile"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}}},
                "responses": {
                  "201": {"description": "Inserted (rows in the body with Prefer: return=representation)", "headers": {"X-Commit-LSN": {"$ref": "#/components/headers/CommitLSN"}}},
                  "400": {"$ref": "#/components/responses/RestError"}, "401": {"$ref": "#/components/responses/RestError"},
                  "403": {"$ref": "#/components/responses/RestError"}, "404": {"$ref": "#/components/responses/RestError"},
                  "406": {"$ref": "#/components/responses/RestError"}, "409": {"$ref": "#/components/responses/RestError"},
                  "415": {"$ref": "#/components/responses/RestError"}
                }
              },
              "patch": {
                "operationId": "updateRows", "summary": "Updates the rows matching the filters (a filter is required; limit and order pick the first ones).",
                "security": [{"jwt": []}],
                "parameters": [{"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/ContentProfile"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                  "200": {"description": "Updated rows (Prefer: return=representation)", "headers": {"X-Commit-LSN": {"$ref": "#/components/headers/CommitLSN"}}},
                  "204": {"description": "Updated", "headers": {"X-Commit-LSN": {"$ref": "#/components/headers/CommitLSN"}}},
                  "400": {"$ref": "#/components/responses/RestError"}, "401": {"$ref": "#/components/responses/RestError"},
                  "403": {"$ref": "#/components/responses/RestError"}, "404": {"$ref": "#/components/responses/RestError"},
                  "406": {"$ref": "#/components/responses/RestError"}, "409": {"$ref": "#/components/responses/RestError"}
                }
              },
              "delete": {
                "operationId": "deleteRows", "summary": "Deletes the rows matching the filters (a filter is required; limit and order pick the first ones).",
                "security": [{"jwt": []}],
                "parameters": [{"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/ContentProfile"}],
                "responses": {
                  "200": {"description": "Deleted rows (Prefer: return=representation)", "headers": {"X-Commit-LSN": {"$ref": "#/components/headers/CommitLSN"}}},
                  "204": {"description": "Deleted", "headers": {"X-Commit-LSN": {"$ref": "#/components/headers/CommitLSN"}}},
                  "400": {"$ref": "#/components/responses/RestError"}, "401": {"$ref": "#/components/responses/RestError"},
                  "403": {"$ref": "#/components/responses/RestError"}, "404": {"$ref": "#/components/responses/RestError"},
                  "406": {"$ref": "#/components/responses/RestError"}, "409": {"$ref": "#/components/responses/RestError"}
                }
              },
              "put": {
                "operationId": "replaceRows", "summary": "Not supported: answers 405 with Allow (use POST with Prefer: resolution=merge-duplicates).",
                "responses": {"405": {"$ref": "#/components/responses/RestError"}}
              }
            },
            "/v1/tables/rpc/{function}": {
              "parameters": [
                {"name": "function", "in": "path", "required": true, "schema": {"type": "string"}, "description": "A function of the profile's schema (Accept-Profile / Content-Profile among api.rest_schemas)."}
              ],
              "get": {
                "operationId": "callFunctionReadOnly", "summary": "Calls a function read-only with the query parameters that name its arguments; the others filter, shape, order and page a set result.",
                "security": [{"jwt": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/AcceptProfile"}],
                "responses": {
                  "200": {"description": "The result: a value, an object, or an array for a set", "content": {"application/json": {"schema": {}}}},
                  "204": {"description": "The function returns void"},
                  "206": {"description": "Part of a set result a count found", "content": {"application/json": {"schema": {"type": "array"}}}},
                  "300": {"$ref": "#/components/responses/RestError"}, "400": {"$ref": "#/components/responses/RestError"},
                  "401": {"$ref": "#/components/responses/RestError"}, "403": {"$ref": "#/components/responses/RestError"},
                  "404": {"$ref": "#/components/responses/RestError"}, "405": {"$ref": "#/components/responses/RestError"},
                  "406": {"$ref": "#/components/responses/RestError"}, "416": {"$ref": "#/components/responses/RestError"}
                }
              },
              "head": {
                "operationId": "countFunctionRows", "summary": "As GET without the body.",
                "security": [{"jwt": []}, {}],
                "responses": {
                  "200": {"description": "Headers only"}, "204": {"description": "The function returns void"},
                  "206": {"description": "Headers only, part of the rows"}, "300": {"description": "Ambiguous overloads"},
                  "400": {"description": "Bad request"}, "401": {"description": "No or a bad token"}, "403": {"description": "Refused"},
                  "404": {"description": "No such function"}, "405": {"description": "The function writes"},
                  "406": {"description": "Not acceptable"}, "416": {"description": "Range not satisfiable"}
                }
              },
              "post": {
                "operationId": "callFunction", "summary": "Calls a function with a JSON object of named arguments (the whole body for Prefer: params=single-object or one unnamed json parameter).",
                "security": [{"jwt": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/Prefer"}, {"$ref": "#/components/parameters/ContentProfile"}],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {}}}},
                "responses": {
                  "200": {"description": "The result: a value, an object, or an array for a set", "content": {"application/json": {"schema": {}}}},
                  "204": {"description": "The function returns void"},
                  "206": {"description": "Part of a set result a count found", "content": {"application/json": {"schema": {"type": "array"}}}},
                  "300": {"$ref": "#/components/responses/RestError"}, "400": {"$ref": "#/components/responses/RestError"},
                  "401": {"$ref": "#/components/responses/RestError"}, "403": {"$ref": "#/components/responses/RestError"},
                  "404": {"$ref": "#/components/responses/RestError"}, "406": {"$ref": "#/components/responses/RestError"},
                  "409": {"$ref": "#/components/responses/RestError"}, "416": {"$ref": "#/components/responses/RestError"}
                }
              }
            },
            "/v1/pipes/{name}/stream": {
              "parameters": [{"$ref": "#/components/parameters/PipeName"}],
              "get": {
                "operationId": "streamEvents", "summary": "Server-Sent Events of the pipe's changes; resumes after Last-Event-ID.", "security": [{"admin": []}],
                "parameters": [
                  {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}},
                  {"$ref": "#/components/parameters/Table"},
                  {"$ref": "#/components/parameters/Op"}
                ],
                "responses": {
                  "200": {"description": "An endless event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                  "404": {"$ref": "#/components/responses/Error"},
                  "410": {"$ref": "#/components/responses/Error"}
                }
              }
            }
          },
          "components": {
            "securitySchemes": {
              "admin": {"type": "http", "scheme": "bearer", "description": "api.admin_token"},
              "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256 or RS256 token; its role claim becomes the transaction's role."}
            },
            "headers": {
              "ContentRange": {"description": "first-last/total of the rows answered (*/total without rows; * for an unknown total).", "schema": {"type": "string"}},
              "CommitLSN": {"description": "LSN of the transaction's commit record (equals source.commit_lsn of its change events).", "schema": {"type": "string"}}
            },
            "parameters": {
              "Prefer": {"name": "Prefer", "in": "header", "required": false, "schema": {"type": "string"}, "description": "Comma-separated: return=minimal|headers-only|representation, count=exact|planned|estimated, resolution=merge-duplicates|ignore-duplicates, missing=default, handling=strict|lenient, max-affected=N, tx=commit|rollback."},
              "AcceptProfile": {"name": "Accept-Profile", "in": "header", "required": false, "schema": {"type": "string"}, "description": "The schema of /{table}, among api.rest_schemas."},
              "ContentProfile": {"name": "Content-Profile", "in": "header", "required": false, "schema": {"type": "string"}, "description": "The schema of /{table} for writes, among api.rest_schemas."},
              "PipeName": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9_]+$"}},
              "Table": {"name": "table", "in": "query", "required": false, "schema": {"type": "string"}, "description": "schema.table, or a table name in any schema."},
              "Op": {"name": "op", "in": "query", "required": false, "schema": {"type": "string", "enum": ["insert", "update", "delete", "truncate", "read", "message", "chunk_dropped"]}}
            },
            "responses": {
              "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
              "RestError": {"description": "An error in PostgREST's shape", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RestError"}}}}
            },
            "schemas": {
              "RestError": {
                "type": "object", "required": ["code", "message", "details", "hint"],
                "properties": {"code": {"type": "string", "description": "PostgreSQL's SQLSTATE or a PGRST code"}, "message": {"type": "string"}, "details": {"type": ["string", "null"]}, "hint": {"type": ["string", "null"]}}
              },
              "Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "sqlstate": {"type": "string"}}}}
              },
              "Pipe": {
                "type": "object", "required": ["name", "state", "origin", "healthy"],
                "properties": {
                  "name": {"type": "string"}, "state": {"type": "string", "enum": ["RUNNING", "STOPPED", "DROPPED"]},
                  "origin": {"type": "string", "enum": ["config", "api"]}, "healthy": {"type": "boolean"},
                  "problem": {"type": "string"}, "last_error": {"type": "string"},
                  "confirmed_lsn": {"type": ["string", "null"]}, "lag_bytes": {"type": "integer"},
                  "events": {"type": "integer"}, "bytes": {"type": "integer"}, "deliveries": {"type": "integer"},
                  "retries": {"type": "integer"}, "dead_letters": {"type": "integer"},
                  "source": {"type": "object"}, "format": {"type": "string"},
                  "sinks": {"type": "array", "items": {"type": "object"}},
                  "definition": {"type": "object", "description": "The pipe as posted, secrets redacted (API pipes only)."},
                  "ha": {
                    "type": "object", "description": "With an ha section: this replica, its role, and the replica that owns the pipe.",
                    "properties": {
                      "replica": {"type": "string"}, "role": {"type": "string", "enum": ["owner", "standby", "none"]},
                      "owner": {"type": "string"}
                    }
                  }
                }
              }
            }
          }
        }
        """#
}
