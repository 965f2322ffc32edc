import Foundation
import Testing

/// The layering of `Sources` and `Package.swift` (see docs/architecture.md, "Modules and
/// layers"), checked on the checkout itself so that it cannot drift back: which module may
/// import what, where blocking work may run, and that every declared dependency is used.
@Suite(.serialized) struct RepositoryLayoutTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Every Swift file under `directory` (relative to the root) with its text.
    static func swiftFiles(under directory: String) throws -> [(path: String, text: String)] {
        let base = root.appendingPathComponent(directory)
        guard let enumerator = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else {
            return []
        }
        var files: [(String, String)] = []
        for case let url as URL in enumerator where url.pathExtension == "swift" {
            let relative = String(url.path.dropFirst(root.path.count + 1))
            files.append((relative, try String(contentsOf: url, encoding: .utf8)))
        }
        return files.sorted { $0.0 < $1.0 }
    }

    static func fileName(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }

    /// Module name → the modules its files import (read once: the suite's tests share it).
    static func imports(under directory: String) throws -> [String: Set<String>] {
        directory == "Sources" ? try sourceImports.get() : try testImports.get()
    }

    static let sourceImports = Result { try scanImports(under: "Sources") }
    static let testImports = Result { try scanImports(under: "Tests") }

    /// `import X` lines (with attributes such as `@testable` or `public`), by module.
    static func scanImports(under directory: String) throws -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for file in try swiftFiles(under: directory) {
            let module = String(file.path.split(separator: "/")[1])
            for line in file.text.split(separator: "\n") where line.contains("import ") {
                var words = line.split(separator: " ").map(String.init)
                while let first = words.first,
                    first.hasPrefix("@") || ["public", "package", "internal"].contains(first)
                {
                    words.removeFirst()
                }
                guard words.first == "import", words.count >= 2 else { continue }
                let name =
                    ["struct", "enum", "class", "func"].contains(words[1]) && words.count >= 3 ? words[2] : words[1]
                result[module, default: []].insert(String(name.prefix { $0.isLetter || $0.isNumber || $0 == "_" }))
            }
        }
        return result
    }

    @Test func eachCLibraryIsImportedByOneClientModule() throws {
        let imports = try Self.imports(under: "Sources")
        let owners = [
            "CLibPQ": "PostgresClient", "CRdKafka": "KafkaClient", "CRabbitMQ": "AMQPClient", "CHiredis": "RedisClient",
        ]
        for (library, owner) in owners {
            let importers = imports.filter { $0.value.contains(library) }.map(\.key).sorted()
            #expect(importers == [owner], "\(library) is imported by \(importers)")
        }
    }

    @Test func adaptersDoNotReachAcrossLayers() throws {
        let imports = try Self.imports(under: "Sources")
        for (module, used) in imports where module.hasSuffix("Sink") {
            #expect(!used.contains("WireProtocol"), "\(module) imports WireProtocol")
            #expect(!used.contains("PostgresSource"), "\(module) imports PostgresSource")
        }
        #expect(imports["HTTPAPI"]?.contains("PostgresSource") == false)
        #expect(imports["HTTPAPI"]?.contains("PostgresClient") == true)
        #expect(imports["PostgresSource"]?.contains("HTTPAPI") == false)
    }

    /// Each sink module registers its kind next to its code, the standard registry lists every
    /// one, and the core names no sink type and not the filter language.
    @Test func sinkKindsAreRegisteredByTheirModules() throws {
        let files = try Self.swiftFiles(under: "Sources")
        let sinkModules = Set(files.map { String($0.path.split(separator: "/")[1]) }.filter { $0.hasSuffix("Sink") })
        #expect(sinkModules.count >= 5, "\(sinkModules)")
        let standard = try #require(files.first { Self.fileName($0.path) == "ConfigRegistry+Standard.swift" })
        for module in sinkModules {
            let registers = files.contains {
                $0.path.hasPrefix("Sources/\(module)/")
                    && $0.text.contains("public static let registration = SinkRegistration(")
            }
            #expect(registers, "\(module) has no SinkRegistration")
            #expect(standard.text.contains("\(module).registration"), "the standard registry misses \(module)")
        }
        for file in files where file.path.hasPrefix("Sources/BridgeCore/Config/") {
            for type in ["FileSinkConfig", "HTTPSinkConfig", "SinkKind"] {
                #expect(!file.text.contains(type), "\(file.path) names \(type): sink kinds belong to their modules")
            }
        }
        for file in files where file.path.hasPrefix("Sources/BridgeCore/") {
            #expect(!file.text.contains("FilterExpression"), "\(file.path): the filter language belongs to Processing")
        }
    }

    /// Blocking work runs on `Confined` handles, `Blocking.run`, a `SourceThread` or librdkafka's
    /// poll thread; nothing polls by sleeping.
    @Test func blockingWorkHasOneHomeEach() throws {
        for file in try Self.swiftFiles(under: "Sources") {
            #expect(!file.text.contains("Thread.sleep"), "\(file.path) sleeps")
            #expect(!file.text.contains("usleep("), "\(file.path) sleeps")
            let startsThreads = file.text.contains("Thread {") || file.text.contains("Thread(block")
            #expect(
                !startsThreads || ["SourceThread.swift", "KafkaProducer.swift"].contains(Self.fileName(file.path)),
                "\(file.path) starts a thread of its own")
            let makesQueues = file.text.contains("DispatchQueue(label")
            #expect(
                !makesQueues
                    || ["Confined.swift", "Blocking.swift", "DispatchTaskExecutor.swift"].contains(
                        Self.fileName(file.path)),
                "\(file.path) makes a queue of its own instead of using Confined or Blocking")
        }
    }

    /// A long file says at its top why it is one piece.
    @Test func longFilesSayWhyTheyAreOnePiece() throws {
        for file in try Self.swiftFiles(under: "Sources") where file.text.split(separator: "\n").count > 400 {
            #expect(file.text.contains("// One piece (over 400 lines)"), "\(file.path) is long without saying why")
        }
    }

    /// Each target of Package.swift imports every module it declares, and declares every
    /// module of the package it imports.
    @Test func declaredDependenciesAreExactlyTheImportedOnes() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let imports = try Self.imports(under: "Sources").merging(try Self.imports(under: "Tests")) { $0.union($1) }
        let targets = manifest.matches(of: /\.(?:target|executableTarget|testTarget)\(\s*name: "(\w+)"/)
        let system: Set<String> = ["Foundation", "Testing", "Dispatch", "Glibc", "Synchronization"]
        let packageModules = Set(targets.map { String($0.1) }).union(["CLibPQ", "CRdKafka", "CRabbitMQ", "CHiredis"])
        #expect(targets.count >= 20)
        var checked = 0
        for (index, target) in targets.enumerated() {
            let name = String(target.1)
            let end = index + 1 < targets.count ? targets[index + 1].range.lowerBound : manifest.endIndex
            let block = manifest[target.range.upperBound..<end]
            guard let list = block.firstMatch(of: /dependencies:\s*\[([^\]]*)\]/) else { continue }
            // `"Module"` for a target of the package, `.product(name: "Module", package: …)`.
            var declared: Set<String> = []
            for entry in list.1.matches(of: /(name: |package: )?"([\w-]+)"/) where entry.1 != "package: " {
                declared.insert(String(entry.2))
            }
            let used = imports[name] ?? []
            checked += 1
            #expect(
                declared.subtracting(used).isEmpty, "\(name) declares \(declared.subtracting(used).sorted()) unused")
            let missing = used.subtracting(system).subtracting(declared).filter { packageModules.contains($0) }
            #expect(missing.isEmpty, "\(name) imports \(missing.sorted()) without declaring them")
        }
        #expect(checked >= 20, "dependency lists found: \(checked)")
    }
}
