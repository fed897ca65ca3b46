import Foundation

/// A one-line progress bar for command-line tools, drawn only when stdout is
/// a terminal (logs and pipes get the final summary alone).
public struct TerminalProgress: Sendable {
    public let isInteractive = isatty(STDOUT_FILENO) == 1
    let unit: String

    public init(unit: String = "lines") {
        self.unit = unit
    }

    /// Redraws the bar for `done` of `total`.
    public func update(_ done: Int, of total: Int) {
        guard isInteractive, total > 0 else { return }
        let width = 30
        let filled = width * min(done, total) / total
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardOutput.write(Data("\r[\(bar)] \(done)/\(total) \(unit)".utf8))
    }

    /// Ends the bar's line.
    public func finish() {
        if isInteractive { print("") }
    }
}
