// generate_muons.cpp: what a FairShip generator does with a shipfastsim neural generator.
//
// 1. Export the component:   shipfastsim export onnx gan-target --output DIR
//    (writes DIR/gan_target.{onnx,json,hxx,dat} and the binding header
//    DIR/gan_target_shipfastsim.hxx, which includes the SOFIE header).
// 2. Build, naming the binding header (nothing else is model-specific here):
//    g++ -std=c++17 -O2 -IDIR -DSHIPFASTSIM_MODEL_HEADER='"gan_target_shipfastsim.hxx"' \
//        generate_muons.cpp -o generate_muons -lopenblas
// 3. Run:  ./generate_muons DIR/gan_target.dat [N_MUONS=10] [SEED=1]
//
// The noise is drawn here, outside the graph, from a seeded std::mt19937_64: N(0,1)
// per column, or U(0,1) where the model declares it (kNoiseUniform), and the
// session maps it to physical muons (for gan-target: x, y, z [cm], px, py, pz
// [GeV/c], PDG id; see the sidecar JSON for each model's columns and units).
// Muons are made in chunks that fit the session (any batch up to the maximum for
// a dynamic-batch export, exactly the batch for a fixed-batch one).
#ifndef SHIPFASTSIM_MODEL_HEADER
#error "define SHIPFASTSIM_MODEL_HEADER as the binding header written by shipfastsim export"
#endif
#include SHIPFASTSIM_MODEL_HEADER

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

namespace m = shipfastsim_model;

int main(int argc, char **argv) {
   if (argc < 2) {
      std::fprintf(stderr, "usage: %s WEIGHTS.dat [N_MUONS] [SEED]\n", argv[0]);
      return 2;
   }
   const std::size_t n_muons = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10;
   const std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
   const std::size_t chunk = m::kDynamicBatch ? std::min<std::size_t>(std::max<std::size_t>(n_muons, 1), 1024)
                                              : m::kMaxBatch;

   auto session = m::make_session(argv[1], chunk);
   std::mt19937_64 engine(seed);
   std::normal_distribution<float> normal(0.0f, 1.0f);
   std::uniform_real_distribution<float> uniform(0.0f, 1.0f);

   std::vector<std::vector<float>> inputs(m::kNumInputs), outputs(m::kNumOutputs);
   const float *in[m::kNumInputs];
   float *out[m::kNumOutputs];
   for (std::size_t i = 0; i < m::kNumInputs; ++i) inputs[i].resize(chunk * m::kInputWidths[i]), in[i] = inputs[i].data();
   for (std::size_t o = 0; o < m::kNumOutputs; ++o) outputs[o].resize(chunk * m::kOutputWidths[o]), out[o] = outputs[o].data();

   std::printf("# %s: %zu muons, seed %llu\n", m::kComponent, n_muons, static_cast<unsigned long long>(seed));
   for (std::size_t o = 0; o < m::kNumOutputs; ++o)
      std::printf("# output %s [%zu columns]: %s\n", m::kOutputNames[o], m::kOutputWidths[o], m::kOutputUnits[o]);

   for (std::size_t done = 0; done < n_muons; done += chunk) {
      for (std::size_t i = 0; i < m::kNumInputs; ++i)
         for (std::size_t k = 0; k < inputs[i].size(); ++k) {
            const bool is_uniform = i == 0 && m::kNoiseUniform[k % m::kInputWidths[0]];
            inputs[i][k] = is_uniform ? uniform(engine) : normal(engine);
         }
      m::run(*session, chunk, in, out);
      const std::size_t rows = std::min(chunk, n_muons - done);
      for (std::size_t r = 0; r < rows; ++r) {
         for (std::size_t o = 0; o < m::kNumOutputs; ++o)
            for (std::size_t c = 0; c < m::kOutputWidths[o]; ++c)
               std::printf("%s%.6g", (o == 0 && c == 0) ? "" : " ", outputs[o][r * m::kOutputWidths[o] + c]);
         std::printf("\n");
      }
   }
   return 0;
}
