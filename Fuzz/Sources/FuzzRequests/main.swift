import EquivProtocol

// libFuzzer supplies main() and calls this per input; nothing else in this file runs.
// A client's byte stream, split at a point the input chooses: the reader never crashes, answers
// each line at most once, and a valid request after any garbage still works.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequests(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let cut = count == 0 ? 0 : Int(bytes[0]) % (count + 1)
    var reader = RequestReader(limit: 64)
    let items = reader.feed(bytes[..<cut]) + reader.feed(bytes[cut...])
    let newlines = bytes.filter { $0 == UInt8(ascii: "\n") }.count
    precondition(items.count <= newlines + count / 65 + 1, "more replies than lines")
    let after = reader.feed(Array("\n{\"cmd\":\"status\"}\n".utf8))
    precondition(after.last == .request(Request(cmd: .status)), "a valid request after garbage was not understood")
    return 0
}
