import CCrypto
import Foundation

/// SHA-256 from the system's libcrypto (OpenSSL), which picks SHA-NI or the widest vector code
/// the CPU has at run time.
enum SHA256 {
    struct Failure: Error, CustomStringConvertible {
        var description: String { "libcrypto's EVP_Digest(SHA-256) failed" }
    }

    /// The digest of `data` as 64 lowercase hex digits.
    static func hex(_ data: Data) throws(Failure) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = data.withUnsafeBytes { bytes in
            EVP_Digest(bytes.baseAddress, bytes.count, &digest, &length, EVP_sha256(), nil)
        }
        guard ok == 1, length == 32 else { throw Failure() }
        return digest[..<32].map { String(format: "%02x", $0) }.joined()
    }
}
