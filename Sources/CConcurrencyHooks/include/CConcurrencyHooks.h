// The Swift runtime's hooks for the global executor (swift/Runtime/Concurrency.h).
// Declared here as plain pointers, so that they link statically too: the
// static runtime does not export them for dlsym.
#ifndef CCONCURRENCYHOOKS_H
#define CCONCURRENCYHOOKS_H

/// Sets the three hooks (function pointers with the runtime's signatures);
/// 0, and nothing set, when any of them is set already.
int icws_set_concurrency_hooks(void *_Nonnull global, void *_Nonnull with_delay, void *_Nonnull with_deadline);

#endif
