// Package layerselect chooses the lazy layers of LightTransfer hybrid
// attention: the layers whose cache can shrink to attention sinks plus a
// recent window (docs/method.md).
//
//   - [LazyRatio] measures a layer's laziness on a prompt (paper Eq. 1) from the
//     post-RoPE queries and keys and the log-sum-exp the attention kernel
//     already produces, without materialising the n×n attention matrix.
//   - [Online] picks lazy layers during prefill (test mode): it keeps
//     K = [KeepCount] layers full and marks the laziest one lazy as soon as more
//     than K observed layers are full, bounding peak cache memory. [TopLazy] is
//     its offline equivalent.
//   - [Plan], [ReadPlan] and [Calibrate] handle fixed lazy-layer lists: a small
//     JSON plan, validated against the model ([Plan.Validate], [ValidateLayers]),
//     made by counting how often each layer comes out lazy over many prompts.
//
// Kernels panic on programmer errors (bad slice sizes); functions taking user
// input return errors wrapping [ErrInvalid], with "layerselect: " messages that
// name the offending value.
package layerselect
