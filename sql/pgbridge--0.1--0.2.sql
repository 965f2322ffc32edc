-- pgbridge 0.1 -> 0.2: pgbridge.mount_bridge, to query Kafka topics, Redis streams, RabbitMQ
-- queues and pipe buffers through pgbridge's PostgreSQL wire protocol with postgres_fdw.
\echo Use "ALTER EXTENSION pgbridge UPDATE" or "pgbridge setup" to install this file. \quit

-- Creates (or updates) the foreign server for pgbridge's wire protocol (config `wire.listen`),
-- a user mapping for the current user, and imports pgbridge's four schemas into
-- <schema_prefix>kafka, <schema_prefix>redis, <schema_prefix>rabbitmq and <schema_prefix>pipes.
-- Run it again after adding topics, streams, queues or pipes: it replaces the foreign tables of
-- this server in those schemas (and nothing else). Needs postgres_fdw.
CREATE FUNCTION pgbridge.mount_bridge(
    host text, port int, "user" text, password text,
    server_name text DEFAULT 'pgbridge_wire', schema_prefix text DEFAULT 'ext_')
RETURNS void
LANGUAGE plpgsql AS $mount$
DECLARE
    remote text;
    local text;
    old regclass;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'postgres_fdw') THEN
        RAISE EXCEPTION 'pgbridge.mount_bridge needs the postgres_fdw extension'
            USING HINT = 'run CREATE EXTENSION postgres_fdw (it ships with PostgreSQL''s contrib package)';
    END IF;
    IF port IS NULL OR port < 1 OR port > 65535 THEN
        RAISE EXCEPTION 'pgbridge.mount_bridge: port must be 1 to 65535, got %', port;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server WHERE srvname = server_name) THEN
        EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                       server_name, host, port::text, 'pgbridge');
    ELSE
        EXECUTE format('ALTER SERVER %I OPTIONS (SET host %L, SET port %L)', server_name, host, port::text);
    END IF;
    EXECUTE format('DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER %I', server_name);
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER %I OPTIONS (user %L, password %L)',
                   server_name, "user", password);
    FOREACH remote IN ARRAY ARRAY['kafka', 'redis', 'rabbitmq', 'pipes'] LOOP
        local := schema_prefix || remote;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', local);
        FOR old IN
            SELECT c.oid::regclass
            FROM pg_catalog.pg_foreign_table f
            JOIN pg_catalog.pg_class c ON c.oid = f.ftrelid
            JOIN pg_catalog.pg_foreign_server s ON s.oid = f.ftserver
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE s.srvname = server_name AND n.nspname = local
        LOOP
            EXECUTE format('DROP FOREIGN TABLE %s', old);
        END LOOP;
        EXECUTE format('IMPORT FOREIGN SCHEMA %I FROM SERVER %I INTO %I', remote, server_name, local);
    END LOOP;
END
$mount$;
