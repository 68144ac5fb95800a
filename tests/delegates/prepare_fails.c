/* `prepare_fails`: loads, then refuses the graph: Prepare reports an error through the
 * context (the runtime's error reporter, which the Python exception carries) and returns
 * kTfLiteError. Options: report=PATH. */
#include "plugin_common.h"

static const char NAME[] = "prepare_fails";
static const char *const KNOWN[] = {NULL};

typedef struct {
  TfLiteDelegate base;
  PluginOptions options;
} PrepareFails;

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  PrepareFails *self = delegate->data_;
  int nodes = plan_size(context);
  report_event(&self->options, NAME, "prepare", "\"plan_nodes\": %d, \"taken\": 0", nodes);
  context->ReportError(context,
                       "prepare_fails delegate: Prepare refused the graph on purpose (%d nodes)",
                       nodes);
  return kTfLiteError;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t num_options,
                                              ErrorReporter report_error) {
  PrepareFails *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  if (!read_options(NAME, keys, values, num_options, KNOWN, report_error, &self->options)) {
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
  PrepareFails *self = delegate->data_;
  report_event(&self->options, NAME, "destroy", "");
  free_options(&self->options);
  free(self);
}
