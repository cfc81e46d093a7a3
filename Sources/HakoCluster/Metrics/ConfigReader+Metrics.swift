extension ConfigReader {
    /// `metrics_listen`: empty (the default) serves no metrics; "PORT" or
    /// ":PORT" listens on loopback; "HOST:PORT" or "[V6]:PORT" where given.
    public mutating func metricsEndpoint(_ key: String = "metrics_listen") throws(ClusterError) -> Endpoint? {
        let text = try string(key, default: "").trimmed
        guard !text.isEmpty else { return nil }
        let spelled = text.allSatisfy(\.isNumber) ? ":" + text : text
        let withHost = spelled.hasPrefix(":") ? "127.0.0.1" + spelled : spelled
        do { return try Endpoint(parsing: withHost) } catch {
            throw .config(key: key, reason: "\(error.description) (e.g. \"127.0.0.1:9410\")")
        }
    }
}
