/* The few TFLite C ABI declarations the test delegates need, written by hand: neither the
 * tensorflow wheel nor Debian ships the TFLite headers. Layouts follow the documented C ABI
 * (tensorflow/lite/core/c/common.h), whose structs only ever grow at the end; every struct here
 * is either used through a pointer the runtime owns, up to a field that has been in place since
 * TF 2.x began, or (TfLiteDelegate, TfLiteRegistration) declared in full and zero-initialised.
 * x86-64 and aarch64 (LP64) only. */
#ifndef EDGEBENCH_TFLITE_ABI_H
#define EDGEBENCH_TFLITE_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

enum { kTfLiteFloat32 = 1 };                       /* TfLiteType */
enum { kTfLiteActNone = 0, kTfLiteActRelu = 1, kTfLiteActReluN1To1 = 2, kTfLiteActRelu6 = 3 };
enum {                                             /* BuiltinOperator codes (schema.fbs) */
  kBuiltinAdd = 0, kBuiltinFullyConnected = 9, kBuiltinMul = 18, kBuiltinRelu = 19,
  kBuiltinDelegate = 51,
};

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

/* Only the leading fields are read; the full struct is 112 bytes on LP64 (checked below), and
 * the claim delegate verifies that stride against the runtime's tensors before it trusts it. */
typedef struct TfLiteTensor {
  int type;
  void *data;
  TfLiteIntArray *dims;
  struct { float scale; int32_t zero_point; } params;
  int allocation_type;
  size_t bytes;
  const void *allocation;
  const char *name;
  void *delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  struct { int type; void *params; } quantization;
  void *sparsity;
  const TfLiteIntArray *dims_signature;
} TfLiteTensor;
_Static_assert(sizeof(TfLiteTensor) == 112, "TfLiteTensor must be 112 bytes on LP64");

typedef struct TfLiteNode {
  TfLiteIntArray *inputs;
  TfLiteIntArray *outputs;
  TfLiteIntArray *intermediates;
  TfLiteIntArray *temporaries;
  void *user_data;
  void *builtin_data;
  /* later fields never read */
} TfLiteNode;

struct TfLiteContext;
struct TfLiteDelegate;

/* Declared in full (its newest layout, 88 bytes): ReplaceNodeSubsetsWithDelegateKernels takes it
 * by value, and on both LP64 ABIs a struct this large travels through memory, so a runtime whose
 * layout is a prefix of this one reads only its own fields. */
typedef struct TfLiteRegistration {
  void *(*init)(struct TfLiteContext *context, const char *buffer, size_t length);
  void (*free)(struct TfLiteContext *context, void *buffer);
  TfLiteStatus (*prepare)(struct TfLiteContext *context, TfLiteNode *node);
  TfLiteStatus (*invoke)(struct TfLiteContext *context, TfLiteNode *node);
  const char *(*profiling_string)(const struct TfLiteContext *context, const TfLiteNode *node);
  int32_t builtin_code;
  const char *custom_name;
  int version;
  void *registration_external;
  void *(*async_kernel)(struct TfLiteContext *context, TfLiteNode *node);
  uint64_t inplace_operator;
} TfLiteRegistration;
_Static_assert(sizeof(TfLiteRegistration) == 88, "TfLiteRegistration must be 88 bytes on LP64");

/* Prefix only, up to ReplaceNodeSubsetsWithDelegateKernels: the runtime owns the struct. */
typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext *context, TfLiteIntArray **plan);
  TfLiteTensor *tensors;
  void *impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext *, TfLiteTensor *, TfLiteIntArray *);
  void (*ReportError)(struct TfLiteContext *, const char *format, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext *, int count, int *first_new_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext *, int node_index,
                                         TfLiteNode **node, TfLiteRegistration **registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      struct TfLiteContext *, TfLiteRegistration registration,
      const TfLiteIntArray *nodes_to_replace, struct TfLiteDelegate *delegate);
  /* later fields never read */
} TfLiteContext;

/* What a delegate kernel's init() receives as `buffer`. */
typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate *delegate;
  TfLiteIntArray *nodes_to_replace;
  TfLiteIntArray *input_tensors;
  TfLiteIntArray *output_tensors;
} TfLiteDelegateParams;

typedef struct TfLiteDelegate {
  void *data_;
  TfLiteStatus (*Prepare)(TfLiteContext *context, struct TfLiteDelegate *delegate);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext *, struct TfLiteDelegate *, int handle,
                                       TfLiteTensor *);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext *, struct TfLiteDelegate *, int handle,
                                     TfLiteTensor *);
  void (*FreeBufferHandle)(TfLiteContext *, struct TfLiteDelegate *, int *handle);
  int64_t flags;
  void *opaque_delegate_builder;  /* must stay NULL: non-NULL means "opaque delegate" */
} TfLiteDelegate;

/* The external-delegate entry points that load_delegate() looks up. */
typedef void (*ErrorReporter)(const char *message);
TfLiteDelegate *tflite_plugin_create_delegate(char **option_keys, char **option_values,
                                              size_t num_options, ErrorReporter report_error);
void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate);

#endif
