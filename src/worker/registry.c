/*
 * registry.c - handler registry and plugin loading (see registry.h).
 *
 * A few dozen handlers at most: a sorted array searched by bisection.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error_int.h"
#include "worker/registry.h"

typedef struct entry_s {
    char *callable;
    tk_handler_fn fn;
    void *user_data;
    int order; /* registration order */
    bool host; /* run by the host's threads (tk_handler_registry_add_host) */
} entry_t;

struct tk_handler_registry_s {
    entry_t *entries; /* sorted by callable */
    int count, cap;
    void **plugins; /* dlopen handles */
    int nplugins;
};

tk_handler_registry_t *tk_handler_registry_new(void)
{
    return calloc(1, sizeof(tk_handler_registry_t));
}

void tk_handler_registry_free(tk_handler_registry_t *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->count; i++)
        free(r->entries[i].callable);
    free(r->entries);
    for (int i = 0; i < r->nplugins; i++)
        dlclose(r->plugins[i]);
    free(r->plugins);
    free(r);
}

/* Index of `callable`, or -(insertion point) - 1. */
static int find(const tk_handler_registry_t *r, const char *callable)
{
    int lo = 0, hi = r->count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(r->entries[mid].callable, callable);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

int tk_handler_register(tk_handler_registry_t *r, const char *callable, tk_handler_fn fn,
                        void *user_data)
{
    if (r == NULL || callable == NULL || callable[0] == '\0' || fn == NULL)
        return TK_EINVAL;
    int at = find(r, callable);
    if (at >= 0)
        return TK_ECONFLICT;
    at = -at - 1;
    if (r->count == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        entry_t *e = realloc(r->entries, (size_t)cap * sizeof(*e));
        if (e == NULL)
            return TK_ENOMEM;
        r->entries = e;
        r->cap = cap;
    }
    char *name = strdup(callable);
    if (name == NULL)
        return TK_ENOMEM;
    memmove(&r->entries[at + 1], &r->entries[at], (size_t)(r->count - at) * sizeof(entry_t));
    r->entries[at] = (entry_t){name, fn, user_data, r->count, false};
    r->count++;
    return TK_OK;
}

/* A host callable's function: the worker hands its steps to the host's threads, so this runs
 * only if one reaches a C handler thread by mistake. */
static int host_only(tk_step_t *step, void *data)
{
    (void)data;
    return tk_step_fail(step, "handler_not_found",
                        "this handler runs in the host language, not on a C handler thread", true);
}

int tk_handler_registry_add_host(tk_handler_registry_t *r, const char *callable)
{
    int rc = tk_handler_register(r, callable, host_only, NULL);
    if (rc == TK_OK)
        r->entries[find(r, callable)].host = true;
    return rc;
}

tk_handler_fn tk_handler_registry_lookup(const tk_handler_registry_t *r, const char *callable,
                                         void **user_data)
{
    int at = callable ? find(r, callable) : -1;
    if (at < 0)
        return NULL;
    if (user_data != NULL)
        *user_data = r->entries[at].user_data;
    return r->entries[at].fn;
}

bool tk_handler_registry_is_host(const tk_handler_registry_t *r, const char *callable)
{
    int at = callable ? find(r, callable) : -1;
    return at >= 0 && r->entries[at].host;
}

int tk_handler_registry_count(const tk_handler_registry_t *r)
{
    return r->count;
}

const char *tk_handler_registry_name(const tk_handler_registry_t *r, int i)
{
    for (int j = 0; j < r->count; j++)
        if (r->entries[j].order == i)
            return r->entries[j].callable;
    return NULL;
}

int tk_handler_registry_load_plugin(tk_handler_registry_t *r, const char *path, tk_error_t *err)
{
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (so == NULL)
        return tk_error_set(err, TK_EINVAL, "cannot load plugin \"%s\": %s", path, dlerror());
    const int *abi = dlsym(so, "tasker_plugin_abi_version");
    if (abi != NULL && *abi != TK_HANDLER_ABI_VERSION) {
        dlclose(so);
        return tk_error_set(err, TK_EINVAL,
                            "cannot load plugin \"%s\": built for handler ABI %d, this worker "
                            "speaks %d",
                            path, *abi, TK_HANDLER_ABI_VERSION);
    }
    tk_plugin_register_fn entry;
    *(void **)&entry = dlsym(so, "tasker_plugin_register");
    if (entry == NULL) {
        dlclose(so);
        return tk_error_set(err, TK_EINVAL,
                            "cannot load plugin \"%s\": it does not export tasker_plugin_register",
                            path);
    }
    void **plugins = realloc(r->plugins, (size_t)(r->nplugins + 1) * sizeof(*plugins));
    if (plugins == NULL) {
        dlclose(so);
        return tk_error_set(err, TK_ENOMEM, "cannot load plugin \"%s\": out of memory", path);
    }
    r->plugins = plugins;
    r->plugins[r->nplugins++] = so; /* keep it loaded even if registration fails half-way */
    int rc = entry(r);
    if (rc != 0)
        return tk_error_set(err, TK_EINVAL,
                            "cannot load plugin \"%s\": tasker_plugin_register returned %d (a "
                            "handler name may be taken twice)",
                            path, rc);
    return TK_OK;
}
