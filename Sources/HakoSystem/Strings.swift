/// Small string helpers so the lower layers need no Foundation.
extension StringProtocol {
    /// Without leading and trailing spaces, tabs and newlines.
    public var trimmed: String {
        let ws: Set<Character> = [" ", "\t", "\n", "\r"]
        guard let start = firstIndex(where: { !ws.contains($0) }),
              let end = lastIndex(where: { !ws.contains($0) }) else { return "" }
        return String(self[start...end])
    }
}
