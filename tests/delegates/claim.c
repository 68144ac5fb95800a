/* `claim`: takes real nodes and computes them, so a model runs partly delegated with outputs
 * equal to the CPU's. It claims float32 nodes of the builtin ops named in `op` (a comma list of
 * ADD, MUL, RELU, FULLY_CONNECTED; default FULLY_CONNECTED) whose shapes it implements exactly:
 * ADD/MUL/RELU elementwise on equal shapes (no broadcasting), FULLY_CONNECTED with plain
 * [N, K] weights; fused NONE/RELU/RELU_N1_TO_1/RELU6. Options: op=LIST, max_nodes=N (claim at
 * most the first N candidates), report=PATH: the prepare event gives plan_nodes, taken,
 * partitions and the ops taken; each kernel logs how many nodes it runs and its invoke count.
 * Faults that strike late, for the agent's scenarios: crash_after=N raises SIGSEGV in a kernel's
 * Nth invoke (a vendor kernel that dies under sustained load); fail_create_from=N makes the Nth
 * and later creations of this delegate in one process fail (a second interpreter refused). */
#include <signal.h>

#include "plugin_common.h"

static const char NAME[] = "claim";
static const char *const KNOWN[] = {"op", "max_nodes", "crash_after", "fail_create_from", NULL};
static long created;  /* creations in this process, for fail_create_from */

static const struct { const char *name; int code; } OPS[] = {
    {"ADD", kBuiltinAdd}, {"MUL", kBuiltinMul}, {"RELU", kBuiltinRelu},
    {"FULLY_CONNECTED", kBuiltinFullyConnected},
};
#define N_OPS (sizeof OPS / sizeof OPS[0])

typedef struct {
  TfLiteDelegate base;
  PluginOptions options;
  bool wanted[N_OPS];
  long max_nodes;
  long crash_after;
} Claim;

static long elements(const TfLiteIntArray *dims) {
  long n = 1;
  for (int i = 0; i < dims->size; i++) n *= dims->data[i];
  return n;
}

/* A float32 tensor whose byte count agrees with its shape. Checked for every tensor a claimed
 * node touches: with a wrong TfLiteTensor stride these fields would be garbage and the node is
 * left to the CPU instead of being computed from misread memory. */
static const TfLiteTensor *float_tensor(TfLiteContext *context, int index) {
  if (index < 0 || (size_t)index >= context->tensors_size) return NULL;
  const TfLiteTensor *t = &context->tensors[index];
  if (t->type != kTfLiteFloat32 || !t->dims || t->dims->size < 0 || t->dims->size > 8)
    return NULL;
  if (t->bytes != (size_t)elements(t->dims) * sizeof(float)) return NULL;
  return t;
}

static bool activation_ok(int act) {
  return act == kTfLiteActNone || act == kTfLiteActRelu || act == kTfLiteActReluN1To1 ||
         act == kTfLiteActRelu6;
}

/* The first field of TfLiteAddParams, TfLiteMulParams and TfLiteFullyConnectedParams is the
 * fused activation; FULLY_CONNECTED's second is the weights format (0 = default). */
static int param(const TfLiteNode *node, int field) {
  return node->builtin_data ? ((const int *)node->builtin_data)[field] : 0;
}

static bool supported(TfLiteContext *context, const TfLiteNode *node, int code) {
  const TfLiteIntArray *in = node->inputs, *out = node->outputs;
  if (out->size != 1) return false;
  const TfLiteTensor *y = float_tensor(context, out->data[0]);
  if (!y) return false;
  if (code == kBuiltinRelu) {
    const TfLiteTensor *x = in->size == 1 ? float_tensor(context, in->data[0]) : NULL;
    return x && elements(x->dims) == elements(y->dims);
  }
  if (code == kBuiltinAdd || code == kBuiltinMul) {
    if (in->size != 2 || !activation_ok(param(node, 0))) return false;
    const TfLiteTensor *a = float_tensor(context, in->data[0]);
    const TfLiteTensor *b = float_tensor(context, in->data[1]);
    if (!a || !b || a->dims->size != b->dims->size) return false;
    for (int i = 0; i < a->dims->size; i++)
      if (a->dims->data[i] != b->dims->data[i]) return false;
    return elements(a->dims) == elements(y->dims);
  }
  if (code == kBuiltinFullyConnected) {
    if (in->size < 2 || in->size > 3 || !activation_ok(param(node, 0)) || param(node, 1) != 0)
      return false;
    const TfLiteTensor *x = float_tensor(context, in->data[0]);
    const TfLiteTensor *w = float_tensor(context, in->data[1]);
    if (!x || !w || w->dims->size != 2) return false;
    long units = w->dims->data[0], depth = w->dims->data[1];
    if (depth <= 0 || elements(x->dims) % depth != 0) return false;
    if (elements(y->dims) != elements(x->dims) / depth * units) return false;
    if (in->size == 3 && in->data[2] >= 0) {
      const TfLiteTensor *bias = float_tensor(context, in->data[2]);
      if (!bias || elements(bias->dims) != units) return false;
    }
    return true;
  }
  return false;
}

/* ---- the delegate kernel: one instance per partition ---- */

typedef struct {
  int code, activation, inputs[3], n_inputs, output;
} Op;

typedef struct {
  Claim *claim;
  int n_ops;
  Op *ops;
  int n_own;       /* tensors produced and consumed inside the partition: the runtime does not */
  int *own_index;  /* allocate those, so the kernel keeps its own buffers for them */
  float **own;
  long invokes;
} Kernel;

static bool contains(const TfLiteIntArray *a, int v) {
  for (int i = 0; i < a->size; i++)
    if (a->data[i] == v) return true;
  return false;
}

static void kernel_free(TfLiteContext *context, void *buffer) {
  (void)context;
  Kernel *k = buffer;
  if (!k) return;
  for (int i = 0; i < k->n_own; i++) free(k->own[i]);
  free(k->own);
  free(k->own_index);
  free(k->ops);
  free(k);
}

static void *kernel_init(TfLiteContext *context, const char *buffer, size_t length) {
  (void)length;
  const TfLiteDelegateParams *params = (const TfLiteDelegateParams *)buffer;
  const TfLiteIntArray *nodes = params->nodes_to_replace;
  Kernel *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->claim = params->delegate->data_;
  k->ops = calloc(nodes->size, sizeof *k->ops);
  k->own_index = calloc(nodes->size, sizeof *k->own_index);
  k->own = calloc(nodes->size, sizeof *k->own);
  if (!k->ops || !k->own_index || !k->own) {
    kernel_free(context, k);
    return NULL;
  }
  for (int i = 0; i < nodes->size; i++) {
    TfLiteNode *node;
    TfLiteRegistration *reg;
    if (context->GetNodeAndRegistration(context, nodes->data[i], &node, &reg) != kTfLiteOk) {
      kernel_free(context, k);
      return NULL;
    }
    Op *op = &k->ops[k->n_ops++];
    op->code = reg->builtin_code;
    op->activation = op->code == kBuiltinRelu ? kTfLiteActRelu : param(node, 0);
    op->n_inputs = node->inputs->size;
    for (int j = 0; j < node->inputs->size; j++) op->inputs[j] = node->inputs->data[j];
    op->output = node->outputs->data[0];
    if (!contains(params->output_tensors, op->output)) {
      float *buf = malloc(context->tensors[op->output].bytes);
      if (!buf) {
        kernel_free(context, k);
        return NULL;
      }
      k->own_index[k->n_own] = op->output;
      k->own[k->n_own++] = buf;
    }
  }
  report_event(&k->claim->options, NAME, "kernel", "\"nodes\": %d", k->n_ops);
  return k;
}

static TfLiteStatus kernel_prepare(TfLiteContext *context, TfLiteNode *node) {
  (void)context;
  (void)node;
  return kTfLiteOk;  /* static shapes only: the outputs' sizes are already right */
}

static float *data_of(const Kernel *k, TfLiteContext *context, int index) {
  for (int i = 0; i < k->n_own; i++)
    if (k->own_index[i] == index) return k->own[i];
  return context->tensors[index].data;
}

static float activate(float v, int act) {
  if (act == kTfLiteActRelu) return v < 0.0f ? 0.0f : v;
  if (act == kTfLiteActRelu6) return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
  if (act == kTfLiteActReluN1To1) return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
  return v;
}

static TfLiteStatus kernel_invoke(TfLiteContext *context, TfLiteNode *node) {
  Kernel *k = node->user_data;
  for (int i = 0; i < k->n_ops; i++) {
    const Op *op = &k->ops[i];
    float *y = data_of(k, context, op->output);
    long n = elements(context->tensors[op->output].dims);
    const float *a = data_of(k, context, op->inputs[0]);
    if (op->code == kBuiltinRelu) {
      for (long j = 0; j < n; j++) y[j] = activate(a[j], kTfLiteActRelu);
    } else if (op->code == kBuiltinAdd || op->code == kBuiltinMul) {
      const float *b = data_of(k, context, op->inputs[1]);
      for (long j = 0; j < n; j++)
        y[j] = activate(op->code == kBuiltinAdd ? a[j] + b[j] : a[j] * b[j], op->activation);
    } else {
      const TfLiteIntArray *wd = context->tensors[op->inputs[1]].dims;
      long units = wd->data[0], depth = wd->data[1], rows = n / units;
      const float *w = data_of(k, context, op->inputs[1]);
      const float *bias =
          op->n_inputs == 3 && op->inputs[2] >= 0 ? data_of(k, context, op->inputs[2]) : NULL;
      for (long r = 0; r < rows; r++)
        for (long u = 0; u < units; u++) {
          float acc = bias ? bias[u] : 0.0f;
          for (long d = 0; d < depth; d++) acc += a[r * depth + d] * w[u * depth + d];
          y[r * units + u] = activate(acc, op->activation);
        }
    }
  }
  k->invokes++;
  report_event(&k->claim->options, NAME, "invoke", "\"nodes\": %d, \"count\": %ld", k->n_ops,
               k->invokes);
  if (k->claim->crash_after > 0 && k->invokes >= k->claim->crash_after) raise(SIGSEGV);
  return kTfLiteOk;
}

/* ---- the delegate ---- */

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  Claim *self = delegate->data_;
  TfLiteIntArray *plan;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  int before = plan->size;
  TfLiteIntArray *take = malloc(sizeof(int) * (size_t)(before + 1));
  if (!take) return kTfLiteError;
  take->size = 0;
  int per_op[N_OPS] = {0};
  for (int i = 0; i < before && (self->max_nodes < 0 || take->size < self->max_nodes); i++) {
    TfLiteNode *node;
    TfLiteRegistration *reg;
    int index = plan->data[i];
    if (context->GetNodeAndRegistration(context, index, &node, &reg) != kTfLiteOk) continue;
    for (size_t o = 0; o < N_OPS; o++)
      if (self->wanted[o] && OPS[o].code == reg->builtin_code &&
          supported(context, node, reg->builtin_code)) {
        take->data[take->size++] = index;
        per_op[o]++;
      }
  }
  int taken = take->size, after = before;
  TfLiteStatus status = kTfLiteOk;
  if (taken > 0) {
    TfLiteRegistration reg = {0};
    reg.init = kernel_init;
    reg.free = kernel_free;
    reg.prepare = kernel_prepare;
    reg.invoke = kernel_invoke;
    reg.custom_name = "EdgebenchClaimDelegate";
    reg.version = 1;
    status = context->ReplaceNodeSubsetsWithDelegateKernels(context, reg, take, delegate);
    after = plan_size(context);
  }
  free(take);
  char ops[256] = "";
  for (size_t o = 0; o < N_OPS; o++)
    if (per_op[o]) {
      char part[64];
      snprintf(part, sizeof part, "%s\"%s\": %d", *ops ? ", " : "", OPS[o].name, per_op[o]);
      strncat(ops, part, sizeof ops - strlen(ops) - 1);
    }
  /* Each partition becomes one node: plan length after = before - taken + partitions. */
  report_event(&self->options, NAME, "prepare",
               "\"plan_nodes\": %d, \"taken\": %d, \"partitions\": %d, \"ops\": {%s}, "
               "\"status\": %d",
               before, taken, taken > 0 ? after - (before - taken) : 0, ops, (int)status);
  return status;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t num_options,
                                              ErrorReporter report_error) {
  Claim *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  if (!read_options(NAME, keys, values, num_options, KNOWN, report_error, &self->options)) {
    free(self);
    return NULL;
  }
  const char *ops = option(&self->options, "op");
  char list[256];
  snprintf(list, sizeof list, "%s", ops ? ops : "FULLY_CONNECTED");
  for (char *save, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    size_t o = 0;
    while (o < N_OPS && strcmp(OPS[o].name, tok) != 0) o++;
    if (o == N_OPS) {
      fail_create(report_error,
                  "claim delegate: op=%s unknown (ADD, MUL, RELU, FULLY_CONNECTED)", tok);
      goto fail;
    }
    self->wanted[o] = true;
  }
  self->max_nodes = -1;
  const char *max = option(&self->options, "max_nodes");
  if (max) {
    char *end;
    self->max_nodes = strtol(max, &end, 10);
    if (*max == '\0' || *end != '\0' || self->max_nodes < 0) {
      fail_create(report_error, "claim delegate: max_nodes=%s is not a count", max);
      goto fail;
    }
  }
  self->crash_after = 0;
  const char *crash = option(&self->options, "crash_after");
  if (crash) {
    char *end;
    self->crash_after = strtol(crash, &end, 10);
    if (*crash == '\0' || *end != '\0' || self->crash_after < 1) {
      fail_create(report_error, "claim delegate: crash_after=%s is not a count", crash);
      goto fail;
    }
  }
  created++;
  const char *from = option(&self->options, "fail_create_from");
  if (from && created >= strtol(from, NULL, 10)) {
    fail_create(report_error, "claim delegate: creation %ld refused (fail_create_from=%s)",
                created, from);
    goto fail;
  }
  report_create(&self->options, NAME);
  self->base.data_ = self;
  self->base.Prepare = prepare;
  return &self->base;
fail:
  free_options(&self->options);
  free(self);
  return NULL;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) {
  if (!delegate) return;
  Claim *self = delegate->data_;
  report_event(&self->options, NAME, "destroy", "");
  free_options(&self->options);
  free(self);
}
