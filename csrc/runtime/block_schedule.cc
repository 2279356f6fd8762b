// Filled in by the block-schedule work.
namespace ofrt {}  // namespace ofrt
