// Package tokenizer is a pure-Go reader and runner for Hugging Face
// tokenizer.json files (the "tokenizers" library format), as shipped with
// Llama, Mistral and Qwen checkpoints.
//
// It implements the byte-pair-encoding (BPE) model with the components those
// families use and encodes exactly as the Rust library does:
//
//   - normalizers: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents,
//     Prepend, Replace, Sequence;
//   - pre-tokenizers: Split (string or look-ahead regex, every split
//     behaviour, invert), ByteLevel, Metaspace, Digits, WhitespaceSplit,
//     Sequence;
//   - model: BPE (string or pair merges, byte_fallback, unk/fuse_unk,
//     ignore_merges, continuing_subword_prefix, end_of_word_suffix);
//   - post-processors: TemplateProcessing, ByteLevel, RobertaProcessing,
//     BertProcessing, Sequence;
//   - decoders: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
//     Sequence.
//
// Added tokens (special or not) are matched in the raw text before
// normalization (normalized=false) or in the normalized text
// (normalized=true), honouring single_word, lstrip and rstrip. Any other
// component type makes [Parse] fail with an error wrapping [ErrUnsupported]
// that names the type.
//
// Differences from the Rust library, all deliberate:
//
//   - Encode rejects text that is not valid UTF-8 with [ErrInvalidUTF8]
//     (Rust strings cannot hold such text, so there is nothing to match).
//   - Decode and the stream decoder reject ids that name no token with
//     [ErrInvalidToken] instead of silently dropping them.
//   - Only the "single" template of a post-processor is used (no pairs).
//   - Metaspace's prepend_scheme "first" treats as first the piece that starts
//     the input (or follows no added token), without byte-exact offset tracking.
//
// The Split regex of Qwen2/Qwen2.5/Qwen3 and Llama 3 runs on a hand-written
// matcher (tested and fuzzed against the regexp2 engine used for any other
// pattern); Oniguruma-style scoped case-insensitive groups such as
// (?i:'s|'t) are expanded to explicit case-fold classes before compiling.
// Byte-level BPE maps bytes to ids directly and caches frequent words.
//
// Chat templates from tokenizer_config.json are rendered with
// github.com/ardanlabs/jinja with the settings Hugging Face uses
// (trim_blocks, lstrip_blocks).
//
// A *Tokenizer is immutable after loading and safe for concurrent use; a
// *StreamDecoder is not.
package tokenizer
