/* `not_a_delegate`: a shared library without the external-delegate entry points, as when a
 * user passes the wrong .so to --delegate. */
int edgebench_not_a_delegate(void) { return 0; }
