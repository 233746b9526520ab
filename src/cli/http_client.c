/*
 * http_client.c - blocking JSON requests with libcurl (see http_client.h).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/http_client.h"
#include "common/error_int.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    tk_http_reply_t *r = arg;
    size_t add = size * n;
    char *body = realloc(r->body, r->len + add + 1);
    if (body == NULL)
        return 0;
    memcpy(body + r->len, data, add);
    r->body = body;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

int tk_http_request(const char *base_url, const char *method, const char *path,
                    const char *json_body, long timeout_ms, tk_http_reply_t *reply, tk_error_t *err)
{
    pthread_once(&curl_once, curl_init);
    memset(reply, 0, sizeof(*reply));
    char *url = NULL;
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/')
        blen--;
    if (asprintf(&url, "%.*s%s", (int)blen, base_url, path) < 0)
        return tk_error_set(err, TK_ENOMEM, "out of memory");
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Accept: application/json");
    if (json_body != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    if (json_body != NULL)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body);
    CURLcode rc = curl_easy_perform(curl);
    int result = TK_OK;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
        if (reply->body == NULL) {
            reply->body = strdup("");
            if (reply->body == NULL)
                result = tk_error_set(err, TK_ENOMEM, "out of memory");
        }
    } else {
        result = rc == CURLE_OPERATION_TIMEDOUT ? TK_ETIMEDOUT : TK_ECONN;
        tk_error_set(err, result, "could not reach the tasker server at %s: %s", url,
                     curl_err[0] ? curl_err : curl_easy_strerror(rc));
        tk_http_reply_free(reply);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(url);
    return result;
}

void tk_http_reply_free(tk_http_reply_t *reply)
{
    if (reply == NULL)
        return;
    free(reply->body);
    reply->body = NULL;
    reply->len = 0;
}

char *tk_http_escape(const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(text);
    char *out = malloc(n * 3 + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

const char *tk_http_error_message(const char *body)
{
    static _Thread_local char buf[1024];
    json_t *doc = json_loads(body ? body : "", 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    snprintf(buf, sizeof(buf), "%s", msg ? msg : (body ? body : ""));
    json_decref(doc);
    return buf;
}
