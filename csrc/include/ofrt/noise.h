// Counter-based Gaussian noise keyed by (seed, block, step, stream): the C++ twin of
// python/omniforcing_rt/pipeline/noise.py, bit for bit.
//
//   key  = splitmix64 chain over seed, block, step, stream            (uint64)
//   u1,2 = splitmix64(key + 2i) >> 11, splitmix64(key + 2i + 1) >> 11, scaled to (0, 1] / [0, 1)
//   z_i  = sqrt(-2 ln u1) * cos(2 pi u2)        (float64, then rounded to float32)
//
// Every value is a pure function of its key and index, so the reference and the engine draw the
// same noise whatever the device, thread count or call order. Framework-free.
#pragma once

#include <cstdint>
#include <vector>

namespace ofrt {

//! Noise stream id of video latents.
inline constexpr int64_t kNoiseStreamVideo = 0;
//! Noise stream id of audio latents.
inline constexpr int64_t kNoiseStreamAudio = 1;

//! One splitmix64 step: x + golden ratio, then the two xor-shift-multiply rounds.
uint64_t splitmix64(uint64_t x);

//! The key of one noise tensor. `seed` is taken modulo 2^64 (Python: seed & (2**64 - 1)).
uint64_t noise_key(uint64_t seed, int64_t block, int64_t step, int64_t stream);

//! Writes `count` standard normal float32 values for `key` into `out`.
void keyed_normal(uint64_t key, float* out, int64_t count);

//! `count` standard normal float32 values for `key`.
std::vector<float> keyed_normal(uint64_t key, int64_t count);

}  // namespace ofrt
