// The 0.2 -> 0.3 upgrade, identical to sql/pgbridge--0.2--0.3.sql (a test checks that).
extension ExtensionSQL {
    static let upgrade_0_2_to_0_3 = #"""
        -- pgbridge 0.2 -> 0.3: least privilege for the capture trigger function.
        \echo Use "ALTER EXTENSION pgbridge UPDATE" or "pgbridge setup" to install this file. \quit

        -- pgbridge.capture() is SECURITY DEFINER and writes to pgbridge.outbox: a role that could attach
        -- it to a table of its own could put events into any channel. EXECUTE is checked when a trigger
        -- is created (not when it fires), so triggers made by pgbridge.watch() keep working; roles that
        -- may call pgbridge.watch() need GRANT EXECUTE ON FUNCTION pgbridge.capture() TO <role>.
        REVOKE EXECUTE ON FUNCTION pgbridge.capture() FROM PUBLIC;

        """#
}
