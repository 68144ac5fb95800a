/* `single`: a delegate that allows one live instance per process, as some NPU drivers do (one
 * open device handle). It takes no node, like `noop`; its creation fails while another instance
 * exists and succeeds again once that one is destroyed. Options: report=PATH (event log, see
 * plugin_common.h; the create and destroy events carry the live count). */
#include "plugin_common.h"

static const char NAME[] = "single";
static const char *const KNOWN[] = {NULL};
static long live;  /* instances created and not yet destroyed in this process */

typedef struct {
  TfLiteDelegate base;
  PluginOptions options;
} Single;

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  Single *self = delegate->data_;
  report_event(&self->options, NAME, "prepare", "\"plan_nodes\": %d, \"taken\": 0",
               plan_size(context));
  return kTfLiteOk;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t num_options,
                                              ErrorReporter report_error) {
  if (live > 0) {
    fail_create(report_error, "single delegate: %ld instance(s) still alive, one at a time",
                live);
    return NULL;
  }
  Single *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  if (!read_options(NAME, keys, values, num_options, KNOWN, report_error, &self->options)) {
    free(self);
    return NULL;
  }
  live++;
  report_create(&self->options, NAME);
  self->base.data_ = self;
  self->base.Prepare = prepare;
  return &self->base;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) {
  if (!delegate) return;
  Single *self = delegate->data_;
  live--;
  report_event(&self->options, NAME, "destroy", "\"live\": %ld", live);
  free_options(&self->options);
  free(self);
}
