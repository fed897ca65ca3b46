import Foundation
import NIOCore

/// The CPUs this process may run on, and sizing the runtime to them.
public enum ProcessCPUs {
    /// How many CPUs the affinity mask allows (`taskset`, a pinned
    /// container); nil where it can't be read.
    public static var affinityCount: Int? {
        // Linux lists the mask in /proc as ranges, e.g. "0-3,8".
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        var count = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch bounds.count {
            case 1: count += 1
            case 2 where bounds[1] >= bounds[0]: count += bounds[1] - bounds[0] + 1
            default: return nil
            }
        }
        return count > 0 ? count : nil
    }

    /// Gives NIO's shared event-loop group one loop per CPU the process may
    /// use. NIO counts cgroup limits but not the affinity mask, so a server
    /// pinned to one core ran one loop per machine core, the loops taking
    /// turns on that core (GetAssignments served 12% fewer calls per second
    /// pinned to one core with two loops than with one). An explicit
    /// `NIO_SINGLETON_GROUP_LOOP_COUNT` wins. For executables, before
    /// anything uses an event loop.
    public static func sizeEventLoopsToAffinity() {
        guard ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil,
              let cpus = affinityCount, cpus < System.coreCount
        else { return }
        NIOSingletons.groupLoopCountSuggestion = cpus
    }
}
