// The contract (names, XML, mapping, limits) lives in BridgeContract, which
// needs neither AsyncHTTPClient nor the session, so that icws-bridgectl and
// the fuzzers build it alone.
@_exported import BridgeContract
import DBusKit
import ICWS

extension ContractMaps {
    public static func busError(_ e: StationCommandError) -> BusError {
        switch e {
        case .noStation: return BusError(name: BridgeNames.errorPrefix + "NoStation", message: "no station is connected")
        case .serverHasNoStation(let i):
            return BusError(name: BridgeNames.errorPrefix + "NoStation", message: "the ICWS server has no station for this session (\(i.httpText))")
        case .icws(let i): return busError(i)
        }
    }
}
