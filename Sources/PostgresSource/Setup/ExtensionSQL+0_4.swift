// The 0.3 -> 0.4 upgrade, identical to sql/pgbridge--0.3--0.4.sql (a test checks that).
extension ExtensionSQL {
    static let upgrade_0_3_to_0_4 = #"""
        -- pgbridge 0.3 -> 0.4: where postgres sinks record what they applied (exactly once).
        \echo Use "ALTER EXTENSION pgbridge UPDATE" or "pgbridge setup" to install this file. \quit

        -- In a target database of a `kind: postgres` sink: the last event each sink applied, written in
        -- the same transaction as the changes. `pending` lists refused events that must not be skipped
        -- when they come again. The sink creates the table on first use when its role may.
        CREATE TABLE pgbridge.sink_positions (
            pipe text NOT NULL,
            sink text NOT NULL,
            source_id text NOT NULL,
            position text NOT NULL,
            pending text[] NOT NULL DEFAULT '{}',
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (pipe, sink, source_id)
        );
        REVOKE ALL ON pgbridge.sink_positions FROM PUBLIC;
        COMMENT ON TABLE pgbridge.sink_positions IS
            'The last change each pgbridge postgres sink applied to this database; delete a row to apply its stream again';

        """#
}
