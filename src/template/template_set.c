/*
 * template_set.c - template directories: finding the files, loading them into a set,
 * duplicate identities, the set's namespaces, registering a set (see template.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error_int.h"
#include "template/template.h"

struct tk_template_set_s {
    tk_template_t **items;
    size_t count, cap;
    const char **namespaces; /* distinct, sorted; point into the templates */
    size_t nnamespaces, ns_cap;
};

/* --- finding the files --- */

typedef struct walk_s {
    char **files;
    size_t count, cap;
    struct {
        dev_t dev;
        ino_t ino;
    } path[64]; /* directories being walked, to skip a symlink back to one of them */
    size_t depth;
    tk_error_t *err;
} walk_t;

static bool has_template_ext(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".yaml") == 0);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] == '/';
    char *p = malloc(a + b + 2);
    if (p != NULL)
        snprintf(p, a + b + 2, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

static int add_file(walk_t *w, char *path)
{
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        char **p = realloc(w->files, cap * sizeof(*p));
        if (p == NULL) {
            free(path);
            return tk_error_set(w->err, TK_ENOMEM, "could not list template files: out of memory");
        }
        w->files = p;
        w->cap = cap;
    }
    w->files[w->count++] = path;
    return TK_OK;
}

static int walk(walk_t *w, const char *dir, const struct stat *st)
{
    for (size_t i = 0; i < w->depth; i++)
        if (w->path[i].dev == st->st_dev && w->path[i].ino == st->st_ino)
            return TK_OK; /* a link back up the tree: already being listed */
    if (w->depth == sizeof(w->path) / sizeof(w->path[0]))
        return tk_error_set(w->err, TK_EINVAL,
                            "could not list template files: %s: directories nested too deeply",
                            dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return tk_error_set(w->err, errno == ENOENT ? TK_ENOTFOUND : TK_EIO,
                            "could not open template directory %s: %s", dir, strerror(errno));
    w->path[w->depth].dev = st->st_dev;
    w->path[w->depth].ino = st->st_ino;
    w->depth++;
    int rc = TK_OK;
    struct dirent *e;
    while (rc == TK_OK && (errno = 0, e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., hidden files and directories (.git, editor backups) */
        char *path = join(dir, e->d_name);
        if (path == NULL) {
            rc = tk_error_set(w->err, TK_ENOMEM, "could not list template files: out of memory");
            break;
        }
        struct stat cst;
        if (stat(path, &cst) != 0) {
            /* A dangling link is no template; anything else is worth saying. */
            if (errno != ENOENT)
                rc = tk_error_set(w->err, TK_EIO, "could not list template files: %s: %s", path,
                                  strerror(errno));
            free(path);
            continue;
        }
        if (S_ISDIR(cst.st_mode)) {
            rc = walk(w, path, &cst);
            free(path);
        } else if (S_ISREG(cst.st_mode) && has_template_ext(e->d_name)) {
            rc = add_file(w, path);
        } else {
            free(path);
        }
    }
    if (rc == TK_OK && errno != 0)
        rc = tk_error_set(w->err, TK_EIO, "could not read template directory %s: %s", dir,
                          strerror(errno));
    closedir(d);
    w->depth--;
    return rc;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int tk_template_files(const char *dir, char ***files, size_t *count, tk_error_t *err)
{
    *files = NULL;
    *count = 0;
    struct stat st;
    if (stat(dir, &st) != 0)
        return tk_error_set(err, errno == ENOENT ? TK_ENOTFOUND : TK_EIO,
                            "could not open template directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return tk_error_set(err, TK_EINVAL, "could not open template directory %s: not a directory",
                            dir);
    walk_t w = {.err = err};
    int rc = walk(&w, dir, &st);
    if (rc != TK_OK) {
        tk_template_files_free(w.files, w.count);
        return rc;
    }
    if (w.count > 1)
        qsort(w.files, w.count, sizeof(*w.files), cmp_path);
    *files = w.files;
    *count = w.count;
    return TK_OK;
}

void tk_template_files_free(char **files, size_t count)
{
    if (files == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(files[i]);
    free(files);
}

/* --- sets --- */

int tk_template_set_new(tk_template_set_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? TK_OK : TK_ENOMEM;
}

void tk_template_set_free(tk_template_set_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        tk_template_free(s->items[i]);
    free(s->items);
    free(s->namespaces);
    free(s);
}

/* Insert ns into the sorted, distinct namespace list. */
static int add_namespace(tk_template_set_t *s, const char *ns)
{
    size_t i = 0;
    while (i < s->nnamespaces && strcmp(s->namespaces[i], ns) < 0)
        i++;
    if (i < s->nnamespaces && strcmp(s->namespaces[i], ns) == 0)
        return TK_OK;
    if (s->nnamespaces == s->ns_cap) {
        size_t cap = s->ns_cap ? s->ns_cap * 2 : 8;
        const char **p = realloc(s->namespaces, cap * sizeof(*p));
        if (p == NULL)
            return TK_ENOMEM;
        s->namespaces = p;
        s->ns_cap = cap;
    }
    memmove(&s->namespaces[i + 1], &s->namespaces[i],
            (s->nnamespaces - i) * sizeof(*s->namespaces));
    s->namespaces[i] = ns;
    s->nnamespaces++;
    return TK_OK;
}

int tk_template_set_add(tk_template_set_t *s, tk_template_t *t, tk_error_t *err)
{
    const tk_template_t *dup = tk_template_set_find(s, tk_template_namespace(t),
                                                    tk_template_name(t), tk_template_version(t));
    if (dup != NULL) {
        tk_error_set(err, TK_ECONFLICT, "%s: template %s/%s version %s is already defined in %s",
                     tk_template_origin(t), tk_template_namespace(t), tk_template_name(t),
                     tk_template_version(t), tk_template_origin(dup));
        tk_template_free(t);
        return TK_ECONFLICT;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        tk_template_t **p = realloc(s->items, cap * sizeof(*p));
        if (p == NULL) {
            tk_template_free(t);
            return tk_error_set(err, TK_ENOMEM, "could not add a template: out of memory");
        }
        s->items = p;
        s->cap = cap;
    }
    if (add_namespace(s, tk_template_namespace(t)) != TK_OK) {
        tk_template_free(t);
        return tk_error_set(err, TK_ENOMEM, "could not add a template: out of memory");
    }
    s->items[s->count++] = t;
    return TK_OK;
}

int tk_template_load_dir(const char *dir, tk_template_set_t **out, tk_error_t *err)
{
    *out = NULL;
    char **files;
    size_t n;
    int rc = tk_template_files(dir, &files, &n, err);
    if (rc != TK_OK)
        return rc;
    tk_template_set_t *s;
    if (tk_template_set_new(&s) != TK_OK) {
        tk_template_files_free(files, n);
        return tk_error_set(err, TK_ENOMEM, "could not load templates: out of memory");
    }
    for (size_t i = 0; i < n && rc == TK_OK; i++) {
        tk_template_t *t;
        rc = tk_template_load_file(files[i], &t, err);
        if (rc == TK_OK)
            rc = tk_template_set_add(s, t, err);
    }
    tk_template_files_free(files, n);
    if (rc != TK_OK) {
        tk_template_set_free(s);
        return rc;
    }
    *out = s;
    return TK_OK;
}

size_t tk_template_set_count(const tk_template_set_t *s)
{
    return s->count;
}

const tk_template_t *tk_template_set_get(const tk_template_set_t *s, size_t i)
{
    return i < s->count ? s->items[i] : NULL;
}

const tk_template_t *tk_template_set_find(const tk_template_set_t *s, const char *namespace_name,
                                          const char *name, const char *version)
{
    for (size_t i = 0; i < s->count; i++) {
        const tk_template_t *t = s->items[i];
        if (strcmp(tk_template_namespace(t), namespace_name) == 0 &&
            strcmp(tk_template_name(t), name) == 0 && strcmp(tk_template_version(t), version) == 0)
            return t;
    }
    return NULL;
}

const char *const *tk_template_set_namespaces(const tk_template_set_t *s, size_t *count)
{
    *count = s->nnamespaces;
    return s->namespaces;
}

int tk_template_set_register(tk_conn_t *c, const tk_template_set_t *s, tk_error_t *err)
{
    for (size_t i = 0; i < s->count; i++) {
        int rc = tk_template_register(c, s->items[i], err);
        if (rc != TK_OK)
            return rc;
    }
    return TK_OK;
}
