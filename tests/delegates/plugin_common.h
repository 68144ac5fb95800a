/* Option handling and the event log shared by the test delegates. Every delegate takes
 * `report=PATH`: it appends one JSON object per line there (create, prepare, kernel, invoke,
 * destroy), which is how the tests see inside a delegate that ran in another process. */
#ifndef EDGEBENCH_PLUGIN_COMMON_H
#define EDGEBENCH_PLUGIN_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tflite_abi.h"

#define MAX_OPTIONS 16

typedef struct PluginOptions {
  size_t count;
  char *keys[MAX_OPTIONS];
  char *values[MAX_OPTIONS];
} PluginOptions;

/* The report_error callback is only valid during create: Python's load_delegate() builds it as a
 * ctypes thunk local to Delegate.__init__, so a later call (from Prepare) would jump into freed
 * memory. Later failures go through context->ReportError instead. */
static void fail_create(ErrorReporter report_error, const char *format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (report_error) report_error(message);
}

/* Copies the options; false (with the reason sent to report_error) on an unknown key. `known` is
 * a NULL-terminated list; "report" is always known. */
static bool read_options(const char *name, char **keys, char **values, size_t num_options,
                         const char *const *known, ErrorReporter report_error,
                         PluginOptions *out) {
  /* ctypes passes the count as a C int although the documented type is size_t; keep the low
   * 32 bits so stale upper register bits cannot turn 2 options into billions. */
  size_t n = (size_t)(uint32_t)num_options;
  memset(out, 0, sizeof *out);
  if (n > MAX_OPTIONS) {
    fail_create(report_error, "%s delegate: %zu options given, at most %d", name, n,
                MAX_OPTIONS);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    bool ok = strcmp(keys[i], "report") == 0;
    for (const char *const *k = known; !ok && *k; k++) ok = strcmp(keys[i], *k) == 0;
    if (!ok) {
      char list[256] = "report";
      for (const char *const *k = known; *k; k++) {
        strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, *k, sizeof list - strlen(list) - 1);
      }
      fail_create(report_error, "%s delegate: unknown option '%s' (known: %s)", name, keys[i],
                  list);
      return false;
    }
    out->keys[i] = strdup(keys[i]);
    out->values[i] = strdup(values[i]);
  }
  out->count = n;
  return true;
}

static const char *option(const PluginOptions *o, const char *key) {
  for (size_t i = 0; i < o->count; i++)
    if (strcmp(o->keys[i], key) == 0) return o->values[i];
  return NULL;
}

static void free_options(PluginOptions *o) {
  for (size_t i = 0; i < o->count; i++) {
    free(o->keys[i]);
    free(o->values[i]);
  }
  o->count = 0;
}

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* Appends {"delegate": NAME, "event": EVENT, <fields>} to the report file, if one was asked for.
 * `fields` is a JSON fragment ("" or "\"k\": 1, ..."). Flushed and closed at once, so the line
 * survives a crash that follows. */
static void report_event(const PluginOptions *o, const char *name, const char *event,
                         const char *fields_format, ...) {
  const char *path = option(o, "report");
  if (!path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  fprintf(f, "{\"delegate\": \"%s\", \"event\": \"%s\"", name, event);
  if (fields_format && *fields_format) {
    va_list args;
    va_start(args, fields_format);
    fputs(", ", f);
    vfprintf(f, fields_format, args);
    va_end(args);
  }
  fputs("}\n", f);
  fclose(f);
}

/* The create event lists every option as received. */
static void report_create(const PluginOptions *o, const char *name) {
  const char *path = option(o, "report");
  if (!path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  fprintf(f, "{\"delegate\": \"%s\", \"event\": \"create\", \"options\": {", name);
  for (size_t i = 0; i < o->count; i++) {
    if (i) fputs(", ", f);
    json_string(f, o->keys[i]);
    fputs(": ", f);
    json_string(f, o->values[i]);
  }
  fputs("}}\n", f);
  fclose(f);
}

/* Execution plan length, or -1 when the runtime refuses to give it. */
static int plan_size(TfLiteContext *context) {
  TfLiteIntArray *plan = NULL;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || !plan) return -1;
  return plan->size;
}

#endif
