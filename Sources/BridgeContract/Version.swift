/// The project's version: every program's `--version`, the man pages and the
/// Debian package (`debian/changelog` must say the same; scripts/package checks).
public let icwsBridgeVersion = "0.1.0"
