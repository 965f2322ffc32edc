/// A plain-PostgreSQL stand-in for TimescaleDB 2.28's catalog shape (see
/// shared/design/TIMESCALEDB.md, "Testing without TimescaleDB"): hypertables are parent tables
/// whose chunks are inheritance children in `_timescaledb_internal` with CHECK constraints,
/// registered in `_timescaledb_catalog.hypertable` / `.chunk` / `.dimension_slice`. A BEFORE
/// INSERT trigger routes rows into daily chunks, creating a chunk in the inserting transaction
/// and, like TimescaleDB >= 2.25 with `timescaledb.enable_chunk_auto_publication = on`, adding it
/// to every publication of its hypertable in that same transaction.
///
/// What it follows, read in TimescaleDB's source at tag 2.28.3 (commit 4a77ff5c):
/// - catalog columns and keys: `sql/pre_install/tables.sql` (`chunk` l.123 and `hypertable` are
///   `user_catalog_table`s; `dimension_slice` l.154 has `chunk_id` with `UNIQUE (chunk_id,
///   dimension_id)` and `ON DELETE CASCADE`); `chunk_constraint` is a compatibility view over
///   `dimension_slice` since 2.28.0 (`sql/views_compat.sql` l.10,
///   `sql/updates/2.27.2--2.28.0.sql` l.198); no catalog table sets a REPLICA IDENTITY, so a
///   delete carries the primary key (`id`) only;
/// - chunk names: `src/chunk.c` `chunk_create_object` (`"%s_%d_chunk"` with the hypertable's
///   `associated_table_prefix`, `_hyper_<hypertable id>` by default, `src/hypertable.c` l.881),
///   ids from `nextval('_timescaledb_catalog.chunk_id_seq')` (`get_next_chunk_id`), never reused;
/// - creation order, `chunk_create_from_hypercube_after_lock` (src/chunk.c l.1092): CREATE TABLE,
///   then one INSERT of the `chunk` row with its final name, then one `dimension_slice` row per
///   dimension, then (auto-publication) `chunk_add_to_publications`, then the user's row;
/// - `drop_chunks`, `chunk_tuple_delete` (src/chunk.c l.2882): deletes the chunk's
///   `dimension_slice` rows, then its `chunk` row, then drops the table.
/// - permissions: every role may read the catalog (`sql/pre_install/tables.sql`, "Set table
///   permissions": `GRANT SELECT ON ALL TABLES IN SCHEMA _timescaledb_catalog TO PUBLIC`, with
///   USAGE on the schemas granted to PUBLIC); only the extension's owner may change it.
enum TimescaleFixture {
    static let sql = #"""
        CREATE SCHEMA _timescaledb_catalog;
        CREATE SCHEMA _timescaledb_internal;
        CREATE TABLE _timescaledb_catalog.hypertable (
            id serial PRIMARY KEY, schema_name name NOT NULL, table_name name NOT NULL,
            associated_schema_name name NOT NULL DEFAULT '_timescaledb_internal', associated_table_prefix name NOT NULL,
            num_dimensions smallint NOT NULL DEFAULT 1, chunk_sizing_func_schema name, chunk_sizing_func_name name,
            chunk_target_size bigint DEFAULT 0, compression_state smallint DEFAULT 0, compressed_hypertable_id int,
            status int DEFAULT 0) WITH (user_catalog_table = true);
        CREATE SEQUENCE _timescaledb_catalog.chunk_id_seq;
        CREATE TABLE _timescaledb_catalog.chunk (
            id int PRIMARY KEY DEFAULT nextval('_timescaledb_catalog.chunk_id_seq'),
            hypertable_id int NOT NULL REFERENCES _timescaledb_catalog.hypertable (id),
            schema_name name NOT NULL, table_name name NOT NULL, compressed_chunk_id int, status int DEFAULT 0,
            osm_chunk bool DEFAULT false, creation_time timestamptz DEFAULT now(), UNIQUE (schema_name, table_name))
            WITH (user_catalog_table = true);
        CREATE TABLE _timescaledb_catalog.continuous_agg (
            mat_hypertable_id int PRIMARY KEY, raw_hypertable_id int, parent_mat_hypertable_id int,
            user_view_schema name, user_view_name name, partial_view_schema name, partial_view_name name,
            direct_view_schema name, direct_view_name name, materialized_only bool DEFAULT true, finalized bool DEFAULT true);
        CREATE TABLE _timescaledb_catalog.dimension (
            id serial PRIMARY KEY, hypertable_id int NOT NULL, column_name name NOT NULL, column_type regtype NOT NULL,
            aligned bool DEFAULT true, num_slices smallint, partitioning_func_schema name, partitioning_func name,
            interval_length bigint DEFAULT 86400000000, compress_interval_length bigint, integer_now_func_schema name,
            integer_now_func name);
        CREATE TABLE _timescaledb_catalog.dimension_slice (
            id serial PRIMARY KEY,
            chunk_id int NOT NULL REFERENCES _timescaledb_catalog.chunk (id) ON DELETE CASCADE,
            dimension_id int NOT NULL REFERENCES _timescaledb_catalog.dimension (id) ON DELETE CASCADE,
            range_start bigint NOT NULL, range_end bigint NOT NULL, UNIQUE (chunk_id, dimension_id));
        CREATE VIEW _timescaledb_catalog.chunk_constraint AS
            SELECT ds.chunk_id, ds.id AS dimension_slice_id, 'constraint_' || ds.id AS constraint_name,
                   NULL::text AS hypertable_constraint_name
            FROM _timescaledb_catalog.dimension_slice ds;
        CREATE TABLE _timescaledb_catalog.fixture_chunk_range (
            chunk_id int PRIMARY KEY, hypertable_id int NOT NULL, range_start timestamptz NOT NULL, range_end timestamptz NOT NULL);

        CREATE FUNCTION _timescaledb_catalog.fixture_route() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            hid int; cid int; cname text; rs timestamptz; pub name; keycols text; ident "char"; trig record;
        BEGIN
            SELECT h.id INTO hid FROM _timescaledb_catalog.hypertable h
            WHERE h.schema_name = TG_TABLE_SCHEMA AND h.table_name = TG_TABLE_NAME;
            rs := date_trunc('day', NEW."time");
            SELECT r.chunk_id INTO cid FROM _timescaledb_catalog.fixture_chunk_range r
            WHERE r.hypertable_id = hid AND r.range_start = rs;
            IF cid IS NULL THEN
                cid := nextval('_timescaledb_catalog.chunk_id_seq');
                SELECT format('%s_%s_chunk', h.associated_table_prefix, cid) INTO cname
                FROM _timescaledb_catalog.hypertable h WHERE h.id = hid;
                EXECUTE format('CREATE TABLE _timescaledb_internal.%I (CHECK ("time" >= %L AND "time" < %L)) INHERITS (%I.%I)',
                               cname, rs, rs + interval '1 day', TG_TABLE_SCHEMA, TG_TABLE_NAME);
                INSERT INTO _timescaledb_catalog.chunk (id, hypertable_id, schema_name, table_name)
                VALUES (cid, hid, '_timescaledb_internal', cname);
                INSERT INTO _timescaledb_catalog.dimension_slice (chunk_id, dimension_id, range_start, range_end)
                SELECT cid, d.id, (extract(epoch FROM rs) * 1000000)::bigint, (extract(epoch FROM rs + interval '1 day') * 1000000)::bigint
                FROM _timescaledb_catalog.dimension d WHERE d.hypertable_id = hid ORDER BY d.id LIMIT 1;
                INSERT INTO _timescaledb_catalog.fixture_chunk_range VALUES (cid, hid, rs, rs + interval '1 day');
                SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) INTO keycols
                FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = TG_RELID AND i.indisprimary;
                IF keycols IS NOT NULL THEN
                    EXECUTE format('ALTER TABLE _timescaledb_internal.%I ADD PRIMARY KEY (%s)', cname, keycols);
                END IF;
                SELECT relreplident INTO ident FROM pg_class WHERE oid = TG_RELID;
                IF ident = 'f' THEN
                    EXECUTE format('ALTER TABLE _timescaledb_internal.%I REPLICA IDENTITY FULL', cname);
                END IF;
                -- Like TimescaleDB: row triggers of the hypertable are copied to every new chunk.
                FOR trig IN SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
                            WHERE t.tgrelid = TG_RELID AND NOT t.tgisinternal AND t.tgname <> 'fixture_route'
                              AND (t.tgtype & 1) = 1 LOOP
                    EXECUTE replace(trig.def,
                        ' ON ' || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME) || ' ',
                        ' ON _timescaledb_internal.' || quote_ident(cname) || ' ');
                END LOOP;
                IF current_setting('timescaledb.enable_chunk_auto_publication', true) = 'on' THEN
                    FOR pub IN SELECT p.pubname FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
                               WHERE pr.prrelid = TG_RELID LOOP
                        EXECUTE format('ALTER PUBLICATION %I ADD TABLE _timescaledb_internal.%I', pub, cname);
                    END LOOP;
                END IF;
            ELSE
                SELECT table_name INTO cname FROM _timescaledb_catalog.chunk WHERE id = cid;
            END IF;
            -- TimescaleDB runs an INSERT … ON CONFLICT against the chunk's own indexes (the chunk
            -- dispatch maps the arbiter indexes to the chunk: src/nodes/chunk_dispatch/chunk_insert_state.c).
            -- A trigger cannot see the statement's clause, only its text (current_query()): the
            -- fixture applies DO NOTHING, and DO UPDATE as an update of every non-key column to the
            -- new row's value (the statement's own SET expressions are not reproduced).
            IF current_query() ~* 'on\s+conflict' THEN
                SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) INTO keycols
                FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = TG_RELID AND i.indisprimary;
                IF current_query() ~* 'do\s+nothing' OR keycols IS NULL THEN
                    EXECUTE format('INSERT INTO _timescaledb_internal.%I SELECT ($1).* ON CONFLICT DO NOTHING', cname) USING NEW;
                ELSE
                    EXECUTE format('INSERT INTO _timescaledb_internal.%I SELECT ($1).* ON CONFLICT (%s) DO UPDATE SET %s',
                        cname, keycols, (SELECT string_agg(format('%I = EXCLUDED.%I', a.attname, a.attname), ', ')
                                         FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
                                           AND format('%I', a.attname) <> ALL (string_to_array(keycols, ', '))))
                    USING NEW;
                END IF;
            ELSE
                EXECUTE format('INSERT INTO _timescaledb_internal.%I SELECT ($1).*', cname) USING NEW;
            END IF;
            RETURN NULL;
        END $$;

        -- drop_chunks stand-in: drops whole chunks; only the catalog rows' deletes reach the WAL
        -- (slices first, then the chunk row, then the table, as chunk_tuple_delete and ts_chunk_drop do).
        CREATE FUNCTION _timescaledb_catalog.fixture_drop_chunks(ht regclass, older_than timestamptz) RETURNS int
        LANGUAGE plpgsql AS $$
        DECLARE r record; n int := 0;
        BEGIN
            FOR r IN SELECT c.id, c.table_name FROM _timescaledb_catalog.chunk c
                     JOIN _timescaledb_catalog.fixture_chunk_range fr ON fr.chunk_id = c.id
                     JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
                     JOIN pg_class pc ON pc.relname = h.table_name AND pc.oid = ht
                     WHERE fr.range_end <= older_than ORDER BY c.id LOOP
                DELETE FROM _timescaledb_catalog.dimension_slice WHERE chunk_id = r.id;
                DELETE FROM _timescaledb_catalog.fixture_chunk_range WHERE chunk_id = r.id;
                DELETE FROM _timescaledb_catalog.chunk WHERE id = r.id;
                EXECUTE format('DROP TABLE _timescaledb_internal.%I', r.table_name);
                n := n + 1;
            END LOOP;
            RETURN n;
        END $$;

        CREATE FUNCTION _timescaledb_catalog.fixture_create_hypertable(ht regclass) RETURNS int LANGUAGE plpgsql AS $$
        DECLARE hid int;
        BEGIN
            -- hypertable_insert (src/hypertable.c): the default prefix is "_hyper_<hypertable id>".
            hid := nextval(pg_get_serial_sequence('_timescaledb_catalog.hypertable', 'id'));
            INSERT INTO _timescaledb_catalog.hypertable (id, schema_name, table_name, associated_table_prefix)
            SELECT hid, n.nspname, c.relname, format('_hyper_%s', hid) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ht;
            INSERT INTO _timescaledb_catalog.dimension (hypertable_id, column_name, column_type)
            VALUES (hid, 'time', 'timestamptz');
            EXECUTE format('CREATE TRIGGER fixture_route BEFORE INSERT ON %s FOR EACH ROW '
                           'EXECUTE FUNCTION _timescaledb_catalog.fixture_route()', ht);
            RETURN hid;
        END $$;

        -- The public API under TimescaleDB's names, for code that calls it (the postgres sink's
        -- create_tables and on_chunk_dropped: drop). Signatures from sql/ddl_api.sql (2.x):
        -- create_hypertable(relation regclass, time_column_name name, …, chunk_time_interval
        -- anyelement = NULL::bigint, …, if_not_exists boolean = FALSE, …) (the 2.x form that is
        -- still accepted, with named arguments) and drop_chunks(relation regclass, older_than "any"
        -- = NULL, newer_than "any" = NULL, verbose boolean = FALSE, …) RETURNS SETOF text. The
        -- fixture keeps daily chunks on a column named "time" whatever the interval asked for.
        CREATE FUNCTION public.create_hypertable(relation regclass, time_column_name name,
            chunk_time_interval anyelement = NULL::bigint, if_not_exists boolean = false)
        RETURNS TABLE (hypertable_id int, schema_name name, table_name name, created bool)
        LANGUAGE plpgsql AS $$
        DECLARE hid int;
        BEGIN
            IF time_column_name <> 'time' THEN
                RAISE EXCEPTION 'the TimescaleDB fixture partitions on a column named "time", not %', time_column_name;
            END IF;
            SELECT h.id INTO hid FROM _timescaledb_catalog.hypertable h JOIN pg_class c ON c.relname = h.table_name
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = h.schema_name WHERE c.oid = relation;
            IF hid IS NULL THEN
                hid := _timescaledb_catalog.fixture_create_hypertable(relation);
                RETURN QUERY SELECT h.id, h.schema_name, h.table_name, true FROM _timescaledb_catalog.hypertable h WHERE h.id = hid;
            ELSIF if_not_exists THEN
                RETURN QUERY SELECT h.id, h.schema_name, h.table_name, false FROM _timescaledb_catalog.hypertable h WHERE h.id = hid;
            ELSE
                RAISE EXCEPTION 'table "%" is already a hypertable', relation;
            END IF;
        END $$;
        CREATE FUNCTION public.drop_chunks(relation regclass, older_than timestamptz = NULL,
            newer_than timestamptz = NULL, verbose boolean = false) RETURNS SETOF text LANGUAGE plpgsql AS $$
        DECLARE names text[];
        BEGIN
            IF newer_than IS NOT NULL THEN RAISE EXCEPTION 'the TimescaleDB fixture drops by older_than only'; END IF;
            SELECT array_agg('_timescaledb_internal.' || c.table_name) INTO names FROM _timescaledb_catalog.chunk c
            JOIN _timescaledb_catalog.fixture_chunk_range fr ON fr.chunk_id = c.id
            JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
            JOIN pg_class pc ON pc.relname = h.table_name AND pc.oid = relation
            WHERE fr.range_end <= older_than;
            PERFORM _timescaledb_catalog.fixture_drop_chunks(relation, older_than);
            RETURN QUERY SELECT unnest(coalesce(names, '{}'));
        END $$;

        GRANT USAGE ON SCHEMA _timescaledb_catalog, _timescaledb_internal TO PUBLIC;
        GRANT SELECT ON ALL TABLES IN SCHEMA _timescaledb_catalog TO PUBLIC;
        """#

    /// A database with the fixture and a `conditions (time, device, temp)` hypertable.
    static func conditionsDatabase(prefix: String) throws -> TestDatabase {
        let db = try TestDatabase(prefix: prefix)
        try db.sql(sql)
        try db.sql(
            """
            CREATE TABLE conditions (time timestamptz NOT NULL, device text NOT NULL, temp float8, PRIMARY KEY (time, device));
            SELECT _timescaledb_catalog.fixture_create_hypertable('conditions');
            """)
        return db
    }
}
