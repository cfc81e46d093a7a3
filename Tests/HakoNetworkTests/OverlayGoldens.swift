// Golden messages of the overlay, the routing mesh and the DNS responder. Each
// was checked against the kernel (OverlayKernelTests sends the same builders to
// a real kernel inside throwaway namespaces and reads the result back with
// iproute2 / nft) or, for DNS, against busybox nslookup.
extension Golden {
    static let overlayFDB = "300000001c00050c00000000000000000700000007000000800002000a0002000e48ac1ffc02000008000100ac1ffc02"
    static let overlayRoute = "3400000018000506000000000000000002180000fe68000104000000080001000a4d0200080005000a4d02000800040007000000"
    static let overlayRouteDelete = "3400000019000500000000000000000002180000fe68000104000000080001000a4d0300080005000a4d03000800040007000000"
    static let fdbDump = "1c0000001e0001030000000000000000070000000000000000000000"
    static let routeDump = "1c0000001a0001030000000000000000020000000000000000000000"
}
