extension Agent {
    /// A peer map from the coordinator: reconciled on a worker (one at a time, in order).
    func applyOverlay(_ map: OverlayMessage) {
        guard let overlay else { return }
        lastOverlay = map
        let node = identity.nodeID
        workers.submit(key: "overlay") { [loop] in
            let r = Result { try overlay.apply(map, node: node) }
            loop.post { [weak self] in
                switch r {
                case .success(let what): self?.log.info(what)
                case .failure(let e): self?.log.error("overlay: \(e)")
                }
            }
        }
    }
}
