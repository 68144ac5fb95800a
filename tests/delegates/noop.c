/* `noop`: loads, reads its options, is asked to Prepare and takes no node, so every op stays on
 * the CPU. Options: mode=ANY (recorded only), fail_create=1 (create returns NULL with a message:
 * the "delegate would not load" fault), report=PATH (event log, see plugin_common.h). */
#include "plugin_common.h"

static const char NAME[] = "noop";
static const char *const KNOWN[] = {"mode", "fail_create", NULL};

typedef struct {
  TfLiteDelegate base;
  PluginOptions options;
} Noop;

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  Noop *self = delegate->data_;
  report_event(&self->options, NAME, "prepare", "\"plan_nodes\": %d, \"taken\": 0",
               plan_size(context));
  return kTfLiteOk;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t num_options,
                                              ErrorReporter report_error) {
  Noop *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  if (!read_options(NAME, keys, values, num_options, KNOWN, report_error, &self->options)) {
    free(self);
    return NULL;
  }
  const char *fail = option(&self->options, "fail_create");
  if (fail && strcmp(fail, "0") != 0) {
    fail_create(report_error, "noop delegate: fail_create=%s was asked for", fail);
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
  Noop *self = delegate->data_;
  report_event(&self->options, NAME, "destroy", "");
  free_options(&self->options);
  free(self);
}
