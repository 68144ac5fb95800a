/* `crash`: loads, then kills the process in Prepare, as a broken vendor delegate would.
 * Options: signal=SEGV (default) or ABRT, report=PATH (the prepare event is written before the
 * crash). raise() rather than a NULL store: gcc -O2 turns a known NULL dereference into a trap
 * instruction (SIGILL), not a segfault. */
#include <signal.h>

#include "plugin_common.h"

static const char NAME[] = "crash";
static const char *const KNOWN[] = {"signal", NULL};

typedef struct {
  TfLiteDelegate base;
  PluginOptions options;
  int signal;
} Crash;

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  Crash *self = delegate->data_;
  report_event(&self->options, NAME, "prepare", "\"plan_nodes\": %d, \"signal\": %d",
               plan_size(context), self->signal);
  if (self->signal == SIGABRT) abort();
  raise(SIGSEGV);
  return kTfLiteError;  /* not reached unless SIGSEGV is caught and handled */
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t num_options,
                                              ErrorReporter report_error) {
  Crash *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  if (!read_options(NAME, keys, values, num_options, KNOWN, report_error, &self->options)) {
    free(self);
    return NULL;
  }
  const char *sig = option(&self->options, "signal");
  if (!sig || strcmp(sig, "SEGV") == 0) {
    self->signal = SIGSEGV;
  } else if (strcmp(sig, "ABRT") == 0) {
    self->signal = SIGABRT;
  } else {
    fail_create(report_error, "crash delegate: signal=%s unknown (SEGV or ABRT)", sig);
    free_options(&self->options);
    free(self);
    return NULL;
  }
  report_create(&self->options, NAME);
  self->base.data_ = self;
  self->base.Prepare = prepare;
  return &self->base;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) {
  if (!delegate) return;
  Crash *self = delegate->data_;
  free_options(&self->options);
  free(self);
}
