// The pgbridge SQL objects, identical to sql/pgbridge--0.1.sql (a test checks that), so that
// `pgbridge setup` can install them where the server's extension directory is not writable.
// Regenerate after editing the .sql file: the literal must end with the file's final newline.
enum ExtensionSQL {
    /// The version `pgbridge setup` brings a database to (0.1, then the upgrades).
    static let version = "0.4"

    static let install_0_1 = #"""
        -- pgbridge 0.1: transactional outbox for trigger-driven change capture.
        -- Installed by CREATE EXTENSION pgbridge, or by `pgbridge setup` (same objects, same schema).
        \echo Use "CREATE EXTENSION pgbridge" or "pgbridge setup" to install this file. \quit

        CREATE TABLE pgbridge.outbox (
            id bigserial PRIMARY KEY,
            channel text NOT NULL,
            event jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX outbox_channel_id ON pgbridge.outbox (channel, id);
        -- Only pgbridge.capture() (SECURITY DEFINER) writes events: application roles cannot forge them.
        REVOKE ALL ON pgbridge.outbox FROM PUBLIC;
        COMMENT ON TABLE pgbridge.outbox IS
            'Change events written by pgbridge.capture(); pgbridge deletes rows once every sink acknowledged them';

        -- Events a sink rejected for good (pipes with dead_letter: {kind: table}).
        CREATE TABLE pgbridge.dead_letters (
            id bigserial PRIMARY KEY,
            failed_at timestamptz NOT NULL DEFAULT now(),
            pipe text NOT NULL,
            sink text NOT NULL,
            reason text NOT NULL,
            attempts int NOT NULL,
            event jsonb NOT NULL
        );
        CREATE INDEX dead_letters_pipe_failed_at ON pgbridge.dead_letters (pipe, failed_at);
        REVOKE ALL ON pgbridge.dead_letters FROM PUBLIC;
        COMMENT ON TABLE pgbridge.dead_letters IS
            'Change events a pgbridge sink rejected (with the reason); replay or delete them once handled';

        -- Pipes created through the HTTP API (POST /v1/pipes), and the state (RUNNING or STOPPED) that
        -- the API set for any pipe, so that they survive restarts and replicas share them. `definition`
        -- is the pipe as posted (JSON, `${ENV}` references unexpanded); NULL for pipes of the
        -- configuration file, whose definition lives there.
        CREATE TABLE pgbridge.pipes (
            name text PRIMARY KEY,
            definition jsonb,
            state text NOT NULL CHECK (state IN ('RUNNING', 'STOPPED')),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        REVOKE ALL ON pgbridge.pipes FROM PUBLIC;
        COMMENT ON TABLE pgbridge.pipes IS 'Pipes managed through the pgbridge HTTP API and their state';

        -- Row and TRUNCATE trigger: writes the change as a native pgbridge event into the outbox in the
        -- same transaction, then NOTIFYs the channel with the row id (a wake-up only: the payload limit
        -- of NOTIFY does not apply to the event, and nothing is lost while pgbridge is away).
        -- Arguments: channel, then optionally the columns to capture. Runs as its owner, so roles that
        -- may write a watched table need no rights on the outbox.
        CREATE FUNCTION pgbridge.capture() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $capture$
        DECLARE
            channel text := coalesce(TG_ARGV[0], 'pgbridge');
            captured text[] := CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1]::text[] END;
            relation oid := TG_RELID;
            schema_name text := TG_TABLE_SCHEMA;
            table_name text := TG_TABLE_NAME;
            chunk text;
            parent oid;
            key_columns text[];
            row_before jsonb;
            row_after jsonb;
            event_key jsonb;
            source jsonb;
            outbox_id bigint;
        BEGIN
            -- A TimescaleDB chunk (row triggers are copied to every chunk) reports its hypertable.
            SELECT i.inhparent INTO parent FROM pg_inherits i WHERE i.inhrelid = TG_RELID LIMIT 1;
            IF parent IS NOT NULL AND TG_TABLE_SCHEMA = '_timescaledb_internal' THEN
                chunk := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
                relation := parent;
                SELECT n.nspname, c.relname INTO schema_name, table_name
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
            END IF;

            source := jsonb_build_object(
                'db', current_database(), 'schema', schema_name, 'table', table_name,
                'xid', txid_current(), 'commit_time', now(), 'capture', 'outbox');
            IF chunk IS NOT NULL THEN
                source := source || jsonb_build_object('chunk', chunk);
            END IF;

            IF TG_LEVEL = 'STATEMENT' THEN  -- TRUNCATE
                INSERT INTO pgbridge.outbox (channel, event)
                VALUES (channel, jsonb_build_object('op', 'truncate', 'source', source, 'key', NULL, 'before', NULL, 'after', NULL))
                RETURNING id INTO outbox_id;
                PERFORM pg_notify(channel, '');
                RETURN NULL;
            END IF;

            IF TG_OP IN ('UPDATE', 'DELETE') THEN row_before := to_jsonb(OLD); END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN row_after := to_jsonb(NEW); END IF;

            -- The key: primary key, else the replica-identity index, else the whole row (FULL).
            SELECT array_agg(a.attname ORDER BY k.ord) INTO key_columns
            FROM pg_index x
            JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
            WHERE x.indrelid = relation AND x.indisprimary;
            IF key_columns IS NULL THEN
                SELECT array_agg(a.attname ORDER BY k.ord) INTO key_columns
                FROM pg_index x
                JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                WHERE x.indrelid = relation AND x.indisreplident;
            END IF;
            IF key_columns IS NOT NULL THEN
                SELECT jsonb_object_agg(c, coalesce(row_after, row_before) -> c) INTO event_key FROM unnest(key_columns) AS c;
            ELSIF (SELECT relreplident FROM pg_class WHERE oid = relation) = 'f' THEN
                event_key := coalesce(row_after, row_before);
            END IF;

            IF captured IS NOT NULL THEN
                IF row_before IS NOT NULL THEN
                    SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') INTO row_before
                    FROM jsonb_each(row_before) e WHERE e.key = ANY (captured);
                END IF;
                IF row_after IS NOT NULL THEN
                    SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') INTO row_after
                    FROM jsonb_each(row_after) e WHERE e.key = ANY (captured);
                END IF;
            END IF;

            INSERT INTO pgbridge.outbox (channel, event)
            VALUES (channel, jsonb_build_object(
                'op', lower(TG_OP), 'source', source, 'key', event_key, 'before', row_before, 'after', row_after))
            RETURNING id INTO outbox_id;
            -- An empty payload: identical notifications of one transaction are folded into one wake-up.
            PERFORM pg_notify(channel, '');
            RETURN NULL;
        END
        $capture$;

        -- Attach capture to a table (or hypertable: TimescaleDB copies row triggers to every chunk).
        CREATE FUNCTION pgbridge.watch(tbl regclass, channel text DEFAULT 'pgbridge', columns text[] DEFAULT NULL)
        RETURNS void
        LANGUAGE plpgsql AS $watch$
        DECLARE
            args text;
        BEGIN
            IF channel IS NULL OR channel = '' OR octet_length(channel) > 63 THEN
                RAISE EXCEPTION 'pgbridge.watch: channel must be 1 to 63 bytes, got %', coalesce(quote_literal(channel), 'NULL');
            END IF;
            args := quote_literal(channel) || CASE WHEN columns IS NULL THEN '' ELSE ', ' || quote_literal(columns::text) END;
            EXECUTE format('DROP TRIGGER IF EXISTS pgbridge_capture ON %s', tbl);
            EXECUTE format('DROP TRIGGER IF EXISTS pgbridge_capture_truncate ON %s', tbl);
            EXECUTE format('CREATE TRIGGER pgbridge_capture AFTER INSERT OR UPDATE OR DELETE ON %s '
                           'FOR EACH ROW EXECUTE FUNCTION pgbridge.capture(%s)', tbl, args);
            EXECUTE format('CREATE TRIGGER pgbridge_capture_truncate AFTER TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION pgbridge.capture(%s)', tbl, args);
        END
        $watch$;

        CREATE FUNCTION pgbridge.unwatch(tbl regclass) RETURNS void
        LANGUAGE plpgsql AS $unwatch$
        BEGIN
            EXECUTE format('DROP TRIGGER IF EXISTS pgbridge_capture ON %s', tbl);
            EXECUTE format('DROP TRIGGER IF EXISTS pgbridge_capture_truncate ON %s', tbl);
        END
        $unwatch$;

        """#
}
