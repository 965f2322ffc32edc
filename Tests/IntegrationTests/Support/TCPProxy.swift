import Foundation
import Glibc
import Synchronization

/// A TCP proxy on loopback whose existing connections can be made to stop forwarding without
/// closing, like a NAT entry or firewall that dropped a flow: both peers keep an open, silent
/// connection. New connections are forwarded normally.
final class TCPProxy: @unchecked Sendable {
    // @unchecked Sendable: `listener` is set once in init; mutable state is in `state`.
    struct State {
        var sockets: [Int32] = []
        /// Connections (by index) whose bytes are read and dropped.
        var blackholed: Set<Int> = []
        var connections = 0
        var stopped = false
        /// Where new connections go.
        var targetPort: UInt16 = 0
    }

    let port: Int
    private let listener: Int32
    private let initialTargetPort: UInt16
    private let state = Mutex(State())

    init(targetPort: Int) throws {
        initialTargetPort = UInt16(targetPort)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw TestFailure("the proxy cannot listen: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        state.withLock { $0.targetPort = initialTargetPort }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "test-tcp-proxy"
        thread.start()
    }

    /// Every connection open now stops forwarding in both directions (and stays open).
    func blackholeExistingConnections() {
        state.withLock { $0.blackholed.formUnion(0..<$0.connections) }
    }

    /// Every connection open now is closed at both ends (a network drop that both sides notice);
    /// the proxy goes on accepting new ones.
    func closeExistingConnections() {
        let sockets = state.withLock { $0.stopped ? [] : $0.sockets }
        for socket in sockets { shutdown(socket, Int32(SHUT_RDWR)) }
    }

    var connectionCount: Int { state.withLock { $0.connections } }

    /// New connections go to `port` from now on (a failover behind a stable address).
    func retarget(_ port: Int) {
        state.withLock { $0.targetPort = UInt16(port) }
    }

    /// Stops listening and ends every connection. Once only: closing a descriptor twice would
    /// close whatever the process opened under that number meanwhile (another test's file).
    func stop() {
        let sockets = state.withLock { state -> [Int32]? in
            guard !state.stopped else { return nil }
            state.stopped = true
            return state.sockets
        }
        guard let sockets else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for socket in sockets { shutdown(socket, Int32(SHUT_RDWR)) }
    }

    deinit { stop() }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: state.withLock { $0.targetPort })
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            let index: Int? = state.withLock { state in
                guard !state.stopped, connected == 0 else { return nil }
                state.sockets += [client, upstream]
                state.connections += 1
                return state.connections - 1
            }
            guard let index else {
                close(client)
                close(upstream)
                continue
            }
            for (from, to) in [(client, upstream), (upstream, client)] {
                let pump = Thread { [self] in self.pump(from: from, to: to, connection: index) }
                pump.name = "test-tcp-proxy-pump"
                pump.start()
            }
        }
    }

    private func pump(from: Int32, to: Int32, connection: Int) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            if state.withLock({ $0.blackholed.contains(connection) }) { continue }  // dropped silently
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes {
                    send(to, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL))
                }
                if written <= 0 { break }
                offset += written
            }
        }
        if !state.withLock({ $0.blackholed.contains(connection) }) {
            shutdown(to, Int32(SHUT_WR))
        }
    }
}
