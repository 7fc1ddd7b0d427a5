#if canImport(Glibc)
    import Glibc
#endif

/// One value handed from a task to a thread that blocks until it comes.
public final class WaitForResult<Value: Sendable>: @unchecked Sendable {
    // Unchecked: `value` is only touched with `mutex` held.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var value: Value?

    public init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    public func set(_ v: Value) {
        pthread_mutex_lock(&mutex)
        value = v
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    public func wait() -> Value {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while true {
            if let v = value { return v }
            pthread_cond_wait(&condition, &mutex)
        }
    }
}
