// Addresses and protocol numbers shared by every layer. Host byte order everywhere;
// byte order is converted only inside the views' accessors (STYLE.md rule 4).

/// An IPv4 address held as a host-order `UInt32` (`10.0.0.1` is `0x0A00_0001`).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    @inlinable public init(_ value: UInt32) { self.value = value }

    @inlinable public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text (`"10.96.0.10"`). Returns nil for anything else:
    /// no leading zeros beyond a lone `0`, no missing or extra octets.
    public init?(_ text: some StringProtocol) {
        var octets: UInt32 = 0
        var count = 0
        var current: UInt32 = 0
        var digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, count < 3 else { return nil }
                octets = octets << 8 | current
                count += 1
                current = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                if digits > 0 && current == 0 { return nil }  // leading zero
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard current <= 255, digits <= 3 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, count == 3 else { return nil }
        value = octets << 8 | current
    }

    public static let any = IPv4Address(0)
    public static let broadcast = IPv4Address(0xFFFF_FFFF)

    @inlinable public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    @inlinable public var isMulticast: Bool { value >> 28 == 0xE }
    @inlinable public var isLoopback: Bool { value >> 24 == 127 }
}

/// An IPv4 prefix such as `10.244.0.0/16`. The address is stored masked.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv4Address
    public let length: UInt8

    public init?(address: IPv4Address, length: Int) {
        guard (0...32).contains(length) else { return nil }
        self.length = UInt8(length)
        self.address = IPv4Address(address.value & IPv4Prefix.mask(length))
    }

    /// Parses `a.b.c.d/n`; a bare address is a /32.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let addr = IPv4Address(parts[0]) else { return nil }
        var len = 32
        if parts.count == 2 {
            guard let l = Int(parts[1]), parts[1].utf8.count <= 2 else { return nil }
            len = l
        }
        self.init(address: addr, length: len)
    }

    @inlinable public static func mask(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }

    @inlinable public func contains(_ a: IPv4Address) -> Bool {
        a.value & IPv4Prefix.mask(Int(length)) == address.value
    }

    public var description: String { "\(address)/\(length)" }
}

/// A 48-bit Ethernet address, held in the low 48 bits of a `UInt64` (first octet highest).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    @inlinable public init(_ value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        value = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24 | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// Parses `aa:bb:cc:dd:ee:ff`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for p in parts {
            guard p.utf8.count == 2, let b = UInt8(p, radix: 16) else { return nil }
            v = v << 8 | UInt64(b)
        }
        value = v
    }

    public static let broadcast = MACAddress(0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(0)

    @inlinable public func octet(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: value >> UInt64(40 - 8 * i)) }

    public var description: String {
        let hex: [Character] = Array("0123456789abcdef")
        var s = ""
        for i in 0..<6 {
            if i > 0 { s.append(":") }
            let b = octet(i)
            s.append(hex[Int(b >> 4)])
            s.append(hex[Int(b & 0xF)])
        }
        return s
    }
}

/// IP protocol numbers (IANA). Unknown numbers never fail a parse.
public enum IPProtocol: Hashable, Sendable, CustomStringConvertible {
    case icmp
    case tcp
    case udp
    case unknown(UInt8)

    @inlinable public init(rawValue: UInt8) {
        switch rawValue {
        case 1: self = .icmp
        case 6: self = .tcp
        case 17: self = .udp
        default: self = .unknown(rawValue)
        }
    }

    @inlinable public var rawValue: UInt8 {
        switch self {
        case .icmp: 1
        case .tcp: 6
        case .udp: 17
        case .unknown(let n): n
        }
    }

    public var description: String {
        switch self {
        case .icmp: "ICMP"
        case .tcp: "TCP"
        case .udp: "UDP"
        case .unknown(let n): "proto-\(n)"
        }
    }
}

/// EtherType values (IEEE 802). Unknown values never fail a parse.
public enum EtherType: Hashable, Sendable {
    case ipv4
    case arp
    case vlan
    case ipv6
    case unknown(UInt16)

    @inlinable public init(rawValue: UInt16) {
        switch rawValue {
        case 0x0800: self = .ipv4
        case 0x0806: self = .arp
        case 0x8100: self = .vlan
        case 0x86DD: self = .ipv6
        default: self = .unknown(rawValue)
        }
    }

    @inlinable public var rawValue: UInt16 {
        switch self {
        case .ipv4: 0x0800
        case .arp: 0x0806
        case .vlan: 0x8100
        case .ipv6: 0x86DD
        case .unknown(let n): n
        }
    }
}
