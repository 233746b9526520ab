/*
 * cmd_template.c - `tasker template`: check template files, list a template directory.
 *
 * Works on files only (no database): `validate` is what a CI job or an editor hook runs,
 * `list --templates DIR` shows what a worker pointed at DIR would register.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "template/template.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: tasker template <subcommand> [options]\n"
                 "\n"
                 "Task templates are YAML files that declare a workflow: a namespace, a name, a\n"
                 "version and a DAG of steps with their handlers.\n"
                 "\n"
                 "Subcommands:\n"
                 "  validate PATH...       check template files (a directory means every *.yml\n"
                 "                         and *.yaml file under it)\n"
                 "  list --templates DIR   list the templates found under DIR\n"
                 "\n"
                 "Options:\n"
                 "  -h, --help             show this help\n"
                 "\n"
                 "Run 'tasker template <subcommand> --help' for the options of a subcommand.\n");
}

static void validate_usage(FILE *out)
{
    fprintf(out, "Usage: tasker template validate [options] PATH...\n"
                 "\n"
                 "Check each template file, and every *.yml / *.yaml file under each directory:\n"
                 "the YAML, the required keys, names and limits, handlers, retry settings, and\n"
                 "that the dependencies form a DAG. Also checks that no two files declare the\n"
                 "same template (namespace, name and version).\n"
                 "Prints \"FILE: ok (namespace/name version, N steps)\" for each valid file and\n"
                 "every problem of the others on stderr.\n"
                 "\n"
                 "Options:\n"
                 "  -q, --quiet   print only the problems\n"
                 "  -h, --help    show this help\n"
                 "\n"
                 "Exit status: 0 when every file is valid, 1 otherwise, 2 for a usage error.\n");
}

static void list_usage(FILE *out)
{
    fprintf(out, "Usage: tasker template list --templates DIR\n"
                 "\n"
                 "List the templates in the *.yml / *.yaml files under DIR (recursively): what a\n"
                 "worker using DIR would register. Fails if any file is invalid.\n"
                 "\n"
                 "Options:\n"
                 "  -t, --templates DIR   template directory\n"
                 "  -h, --help            show this help\n");
}

/* --- validate --- */

typedef struct validate_s {
    tk_template_set_t *set; /* valid templates so far, to catch duplicate identities */
    char **seen;            /* real paths already checked (a file named twice counts once) */
    size_t nseen, seen_cap;
    int files, invalid, errors;
    bool quiet;
} validate_t;

static void print_problem(const char *message, void *arg)
{
    (void)arg;
    fprintf(stderr, "%s\n", message);
}

/* True if `path` was checked already; remembers it otherwise. */
static bool already_seen(validate_t *v, const char *path)
{
    char *real = realpath(path, NULL);
    if (real == NULL)
        return false; /* the loader will say what is wrong with it */
    for (size_t i = 0; i < v->nseen; i++) {
        if (strcmp(v->seen[i], real) == 0) {
            free(real);
            return true;
        }
    }
    if (v->nseen == v->seen_cap) {
        size_t cap = v->seen_cap ? v->seen_cap * 2 : 16;
        char **p = realloc(v->seen, cap * sizeof(*p));
        if (p == NULL) {
            free(real);
            return false;
        }
        v->seen = p;
        v->seen_cap = cap;
    }
    v->seen[v->nseen++] = real;
    return false;
}

static void validate_file(validate_t *v, const char *path)
{
    if (already_seen(v, path))
        return;
    v->files++;
    tk_template_t *t;
    tk_error_t err;
    if (tk_template_load_file_ex(path, print_problem, NULL, &t, &err) != TK_OK) {
        v->invalid++;
        return;
    }
    if (tk_template_set_add(v->set, t, &err) != TK_OK) { /* t is freed */
        fprintf(stderr, "%s\n", err.message);
        v->invalid++;
        return;
    }
    size_t n = tk_template_step_count(t);
    if (!v->quiet)
        printf("%s: ok (%s/%s %s, %zu step%s)\n", path, tk_template_namespace(t),
               tk_template_name(t), tk_template_version(t), n, n == 1 ? "" : "s");
}

static void validate_path(validate_t *v, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        validate_file(v, path);
        return;
    }
    char **files;
    size_t n;
    tk_error_t err;
    if (tk_template_files(path, &files, &n, &err) != TK_OK) {
        tk_cli_fail("%s", err.message);
        v->errors++;
        return;
    }
    if (n == 0) {
        tk_cli_fail("%s: no template files (*.yml, *.yaml) in this directory", path);
        v->errors++;
    }
    for (size_t i = 0; i < n; i++)
        validate_file(v, files[i]);
    tk_template_files_free(files, n);
}

static int template_validate(int argc, char **argv)
{
    static const struct option options[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    validate_t v = {0};
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "qh", options, NULL)) != -1) {
        switch (opt) {
        case 'q':
            v.quiet = true;
            break;
        case 'h':
            validate_usage(stdout);
            return TK_CLI_EXIT_OK;
        default:
            return tk_cli_usage_error("template validate", "invalid option");
        }
    }
    if (optind >= argc)
        return tk_cli_usage_error("template validate", "missing template file or directory");
    if (tk_template_set_new(&v.set) != TK_OK)
        return tk_cli_fail("could not validate templates: out of memory");
    for (int i = optind; i < argc; i++)
        validate_path(&v, argv[i]);
    tk_template_set_free(v.set);
    for (size_t i = 0; i < v.nseen; i++)
        free(v.seen[i]);
    free(v.seen);
    if (v.invalid > 0)
        tk_cli_fail("%d of %d template file%s invalid", v.invalid, v.files,
                    v.files == 1 ? " is" : "s are");
    return v.invalid > 0 || v.errors > 0 ? TK_CLI_EXIT_FAIL : TK_CLI_EXIT_OK;
}

/* --- list --- */

static int by_identity(const void *a, const void *b)
{
    const tk_template_t *x = *(const tk_template_t *const *)a;
    const tk_template_t *y = *(const tk_template_t *const *)b;
    int c = strcmp(tk_template_namespace(x), tk_template_namespace(y));
    if (c == 0)
        c = strcmp(tk_template_name(x), tk_template_name(y));
    if (c == 0)
        c = strcmp(tk_template_version(x), tk_template_version(y));
    return c;
}

static int width(int w, const char *s)
{
    size_t n = strlen(s);
    return n > (size_t)w && n < INT_MAX ? (int)n : w;
}

static int template_list(int argc, char **argv)
{
    static const struct option options[] = {
        {"templates", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "t:h", options, NULL)) != -1) {
        switch (opt) {
        case 't':
            dir = optarg;
            break;
        case 'h':
            list_usage(stdout);
            return TK_CLI_EXIT_OK;
        default:
            return tk_cli_usage_error("template list", "invalid option");
        }
    }
    if (optind < argc)
        return tk_cli_usage_error("template list", "unexpected argument \"%s\"", argv[optind]);
    if (dir == NULL)
        return tk_cli_usage_error("template list", "missing --templates DIR");

    tk_template_set_t *set;
    tk_error_t err;
    if (tk_template_load_dir(dir, &set, &err) != TK_OK)
        return tk_cli_fail("%s", err.message);
    size_t n = tk_template_set_count(set);
    if (n == 0) {
        printf("no templates under %s\n", dir);
        tk_template_set_free(set);
        return TK_CLI_EXIT_OK;
    }
    const tk_template_t **rows = malloc(n * sizeof(*rows));
    if (rows == NULL) {
        tk_template_set_free(set);
        return tk_cli_fail("could not list templates: out of memory");
    }
    int wns = 9, wname = 4, wver = 7;
    for (size_t i = 0; i < n; i++) {
        rows[i] = tk_template_set_get(set, i);
        wns = width(wns, tk_template_namespace(rows[i]));
        wname = width(wname, tk_template_name(rows[i]));
        wver = width(wver, tk_template_version(rows[i]));
    }
    qsort(rows, n, sizeof(*rows), by_identity);
    printf("%-*s  %-*s  %-*s  %5s  %s\n", wns, "NAMESPACE", wname, "NAME", wver, "VERSION", "STEPS",
           "FILE");
    for (size_t i = 0; i < n; i++)
        printf("%-*s  %-*s  %-*s  %5zu  %s\n", wns, tk_template_namespace(rows[i]), wname,
               tk_template_name(rows[i]), wver, tk_template_version(rows[i]),
               tk_template_step_count(rows[i]), tk_template_origin(rows[i]));
    free(rows);
    tk_template_set_free(set);
    return TK_CLI_EXIT_OK;
}

int tk_cmd_template(int argc, char **argv)
{
    if (argc < 2)
        return tk_cli_usage_error("template", "missing subcommand (validate, list)");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        usage(stdout);
        return TK_CLI_EXIT_OK;
    }
    if (strcmp(sub, "validate") == 0)
        return template_validate(argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return template_list(argc - 1, argv + 1);
    if (sub[0] == '-')
        return tk_cli_usage_error("template", "invalid option \"%s\"", sub);
    return tk_cli_usage_error("template", "unknown subcommand \"%s\"", sub);
}
