import Foundation

/// Turns a client's bytes into requests: `\n`-framed lines of at most `limit` bytes, each a JSON
/// `Request`. Pure and incremental (bytes may arrive split anywhere), so it can be fuzzed alone.
public struct RequestReader: Sendable {
    public enum Item: Equatable, Sendable {
        case request(Request)
        /// What to tell the client instead: `request_too_long` or `bad_request`.
        case error(code: String, message: String)
    }

    public let limit: Int
    private var line: [UInt8] = []
    /// Set after an over-long line, until its end is seen.
    private var discarding = false

    public init(limit: Int) { self.limit = limit }

    /// Feeds `bytes`; returns what the lines they completed ask for, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Item] {
        var items: [Item] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if !discarding, let item = Self.parse(line) { items.append(item) }
                discarding = false
                line.removeAll(keepingCapacity: true)
            } else if !discarding {
                line.append(byte)
                if line.count > limit {
                    items.append(.error(code: "request_too_long", message: "a request line may be at most \(limit) bytes"))
                    discarding = true
                    line.removeAll(keepingCapacity: true)
                }
            }
        }
        return items
    }

    private static func parse(_ bytes: [UInt8]) -> Item? {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        do {
            return .request(try EventProtocol.decode(Request.self, from: Substring(text)))
        } catch {
            return .error(code: "bad_request", message: "expected {\"cmd\":\"status\"} or {\"cmd\":\"reload\"}: \(reason(error))")
        }
    }

    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c) where c.codingPath.isEmpty: "not valid JSON"
        case DecodingError.dataCorrupted(let c): "bad value at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c): "bad value at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        default: "unknown command"
        }
    }
}
