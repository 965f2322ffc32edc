import BridgeCore
import MetricsTestKit
import Testing

@Suite("Message source counters")
struct MessageSourceCountersTests {
    /// Batches add up; a measurement replaces the previous one, and a partition no longer
    /// measured (revoked, say) loses its gauge instead of showing a stale value.
    @Test func countsAddUpAndMeasurementsReplaceEachOther() throws {
        let metrics = TestMetrics()
        let counters = MessageSourceCounters(pipe: "ingest", factory: metrics)
        counters.counted(messages: 10, bytes: 400, refused: 1)
        counters.counted(messages: 5, bytes: 100, refused: 0)
        var stats = counters.stats
        #expect(stats.messages == 15 && stats.bytes == 500 && stats.refused == 1 && stats.measuredAt == nil)
        #expect(try metrics.expectCounter("pgbridge_source_messages_total", [("pipe", "ingest")]).totalValue == 15)
        #expect(try metrics.expectCounter("pgbridge_source_bytes_total", [("pipe", "ingest")]).totalValue == 500)
        #expect(try metrics.expectCounter("pgbridge_source_refused_total", [("pipe", "ingest")]).totalValue == 1)

        counters.measured(lag: ["t[0]": 7, "t[1]": 0], pending: ["s": 3])
        stats = counters.stats
        #expect(stats.lag == ["t[0]": 7, "t[1]": 0] && stats.pending == ["s": 3] && stats.measuredAt != nil)
        let lag0 = try metrics.expectGauge("pgbridge_source_lag_messages", [("pipe", "ingest"), ("of", "t[0]")])
        #expect(lag0.lastValue == 7)
        #expect(
            try metrics.expectGauge("pgbridge_source_pending_messages", [("pipe", "ingest"), ("of", "s")]).lastValue
                == 3)

        counters.measured(lag: ["t[1]": 2], pending: [:])
        #expect(counters.stats.lag == ["t[1]": 2] && counters.stats.pending.isEmpty)
        #expect(
            try metrics.expectGauge("pgbridge_source_lag_messages", [("pipe", "ingest"), ("of", "t[1]")]).lastValue == 2
        )
        #expect(throws: (any Error).self, "t[0] is no longer assigned: its gauge is gone") {
            try metrics.expectGauge("pgbridge_source_lag_messages", [("pipe", "ingest"), ("of", "t[0]")])
        }
        counters.close()
        #expect(throws: (any Error).self, "a finished source shows no backlog") {
            try metrics.expectGauge("pgbridge_source_lag_messages", [("pipe", "ingest"), ("of", "t[1]")])
        }
        #expect(counters.stats.messages == 15, "the counts stay for the stopped pipe's status")
    }
}
