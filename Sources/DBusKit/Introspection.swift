@_exported import DBusIntrospection

extension InterfaceDescription {
    /// Parses every `<interface>` in an introspection document; a document
    /// that cannot be read is `BusError.failed` with the reason.
    public static func parse(xml: String) throws(BusError) -> [InterfaceDescription] {
        do { return try read(xml: xml) } catch { throw .failed(error.message) }
    }
}
