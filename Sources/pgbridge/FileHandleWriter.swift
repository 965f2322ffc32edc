import Foundation

enum FileHandleWriter {
    static func writeStandardError(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}
