#include "bench_receiver.h"
#include <dbus/dbus.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bench_receiver {
    DBusConnection *connection;
    char member[128];
    _Atomic uint64_t count;
    pthread_t thread;
};

static DBusHandlerResult filter(DBusConnection *c, DBusMessage *m, void *data) {
    (void)c;
    bench_receiver *r = data;
    if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_SIGNAL) {
        const char *member = dbus_message_get_member(m);
        if (member && strcmp(member, r->member) == 0) atomic_fetch_add(&r->count, 1);
    }
    return DBUS_HANDLER_RESULT_HANDLED;
}

static void *run(void *data) {
    bench_receiver *r = data;
    while (dbus_connection_read_write_dispatch(r->connection, -1)) {}
    return NULL;
}

bench_receiver *bench_receiver_start(const char *address, const char *member) {
    DBusError err;
    dbus_error_init(&err);
    DBusConnection *c = dbus_connection_open_private(address, &err);
    if (!c) { dbus_error_free(&err); return NULL; }
    if (!dbus_bus_register(c, &err)) { dbus_error_free(&err); dbus_connection_close(c); dbus_connection_unref(c); return NULL; }
    bench_receiver *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->connection = c;
    snprintf(r->member, sizeof r->member, "%s", member);
    char rule[256];
    snprintf(rule, sizeof rule, "type='signal',member='%s'", member);
    dbus_bus_add_match(c, rule, &err);
    if (dbus_error_is_set(&err)) { dbus_error_free(&err); return NULL; }
    dbus_connection_add_filter(c, filter, r, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) return NULL;
    return r;
}

uint64_t bench_receiver_count(bench_receiver *r) { return atomic_load(&r->count); }

void bench_receiver_reset(bench_receiver *r) { atomic_store(&r->count, 0); }

static void add_entry(DBusMessageIter *dict, const char *key, int type, const void *value) {
    DBusMessageIter entry, variant;
    char sig[2] = {(char)type, 0};
    dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry);
    dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &key);
    dbus_message_iter_open_container(&entry, DBUS_TYPE_VARIANT, sig, &variant);
    dbus_message_iter_append_basic(&variant, type, value);
    dbus_message_iter_close_container(&entry, &variant);
    dbus_message_iter_close_container(dict, &entry);
}

static _Atomic uint64_t sender_cpu_ns;

uint64_t bench_sender_cpu_ns(void) { return sender_cpu_ns; }

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_send_alerting(const char *address, const char *path, const char *interface, uint64_t first_seq, uint64_t count) {
    DBusError err;
    dbus_error_init(&err);
    DBusConnection *c = dbus_connection_open_private(address, &err);
    if (!c) { dbus_error_free(&err); return 0; }
    if (!dbus_bus_register(c, &err)) { dbus_error_free(&err); dbus_connection_close(c); dbus_connection_unref(c); return 0; }
    uint64_t sent = 0;
    uint64_t cpu0 = thread_cpu_ns();
    for (uint64_t i = 0; i < count; i++) {
        DBusMessage *m = dbus_message_new_signal(path, interface, "InteractionAlerting");
        if (!m) break;
        char id[32], seq[32], when[32];
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(id, sizeof id, "b%llu", (unsigned long long)(first_seq + i));
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)(first_seq + i));
        snprintf(when, sizeof when, "%llu", (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
        const char *p_id = id, *p_type = "Call", *p_name = "Bench", *p_address = "+10000000000";
        dbus_uint32_t alert_type = 5, alert_action = 2;
        dbus_bool_t auto_answer = 0, is_delta = 1;
        DBusMessageIter args, array, dict, entry, variant, attrs, attr;
        dbus_message_iter_init_append(m, &args);
        dbus_message_iter_open_container(&args, DBUS_TYPE_ARRAY, "a{sv}", &array);
        dbus_message_iter_open_container(&array, DBUS_TYPE_ARRAY, "{sv}", &dict);
        add_entry(&dict, "interactionId", DBUS_TYPE_STRING, &p_id);
        add_entry(&dict, "interactionType", DBUS_TYPE_STRING, &p_type);
        add_entry(&dict, "name", DBUS_TYPE_STRING, &p_name);
        add_entry(&dict, "address", DBUS_TYPE_STRING, &p_address);
        add_entry(&dict, "alertType", DBUS_TYPE_UINT32, &alert_type);
        add_entry(&dict, "alertAction", DBUS_TYPE_UINT32, &alert_action);
        add_entry(&dict, "autoAnswer", DBUS_TYPE_BOOLEAN, &auto_answer);
        const char *k_attrs = "attributes", *k_seq = "BenchSeq", *k_sent = "BenchSent", *p_seq = seq, *p_when = when;
        dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry);
        dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &k_attrs);
        dbus_message_iter_open_container(&entry, DBUS_TYPE_VARIANT, "a{ss}", &variant);
        dbus_message_iter_open_container(&variant, DBUS_TYPE_ARRAY, "{ss}", &attrs);
        dbus_message_iter_open_container(&attrs, DBUS_TYPE_DICT_ENTRY, NULL, &attr);
        dbus_message_iter_append_basic(&attr, DBUS_TYPE_STRING, &k_seq);
        dbus_message_iter_append_basic(&attr, DBUS_TYPE_STRING, &p_seq);
        dbus_message_iter_close_container(&attrs, &attr);
        dbus_message_iter_open_container(&attrs, DBUS_TYPE_DICT_ENTRY, NULL, &attr);
        dbus_message_iter_append_basic(&attr, DBUS_TYPE_STRING, &k_sent);
        dbus_message_iter_append_basic(&attr, DBUS_TYPE_STRING, &p_when);
        dbus_message_iter_close_container(&attrs, &attr);
        dbus_message_iter_close_container(&variant, &attrs);
        dbus_message_iter_close_container(&entry, &variant);
        dbus_message_iter_close_container(&dict, &entry);
        dbus_message_iter_close_container(&array, &dict);
        dbus_message_iter_close_container(&args, &array);
        dbus_message_iter_append_basic(&args, DBUS_TYPE_BOOLEAN, &is_delta);
        if (dbus_connection_send(c, m, NULL)) sent++;
        dbus_message_unref(m);
    }
    dbus_connection_flush(c);
    sender_cpu_ns = thread_cpu_ns() - cpu0;
    dbus_connection_close(c);
    dbus_connection_unref(c);
    return sent;
}
