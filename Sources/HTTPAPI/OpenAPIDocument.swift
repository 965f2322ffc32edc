/// The OpenAPI 3.1 description of the HTTP API, served at `/v1/openapi.json`. A test checks
/// that it validates and lists exactly the routes the server registers.
enum OpenAPIDocument {
    static let json = #"""
        {
          "openapi": "3.1.0",
          "info": {
            "title": "pgbridge HTTP API",
            "version": "1",
            "description": "Health, metrics, pipe management, and the pull API over each pipe's recent change events. See docs/http-api.md."
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
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer", "description": "api.admin_token"}},
            "parameters": {
              "PipeName": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9_]+$"}},
              "Table": {"name": "table", "in": "query", "required": false, "schema": {"type": "string"}, "description": "schema.table, or a table name in any schema."},
              "Op": {"name": "op", "in": "query", "required": false, "schema": {"type": "string", "enum": ["insert", "update", "delete", "truncate", "read", "message", "chunk_dropped"]}}
            },
            "responses": {
              "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
            "schemas": {
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
                  "definition": {"type": "object", "description": "The pipe as posted, secrets redacted (API pipes only)."}
                }
              }
            }
          }
        }
        """#
}
