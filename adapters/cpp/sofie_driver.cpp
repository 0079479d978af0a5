// Test and benchmark driver for a SOFIE-generated shipfastsim model.
//
// Reads float32 inputs from a file, runs the generated session on them, writes the
// float32 outputs; optionally times the inference in a loop (single thread).
//
// Build (shipfastsim.adapters.sofie_codegen.compile_program does this):
//   g++ -std=c++17 -O2 -I<export dir> -DSHIPFASTSIM_MODEL_HEADER='"gan_target_shipfastsim.hxx"' \
//       sofie_driver.cpp -o driver -lopenblas
// Run:
//   driver WEIGHTS.dat INPUTS.bin OUTPUTS.bin N_ROWS [REPEATS]
// INPUTS.bin holds, input after input, N_ROWS x width float32 values (row-major);
// OUTPUTS.bin receives the outputs the same way.  With REPEATS > 0 the whole
// inference is repeated REPEATS times and "ns_per_row <value>" is printed.
#ifndef SHIPFASTSIM_MODEL_HEADER
#error "define SHIPFASTSIM_MODEL_HEADER as the binding header written by shipfastsim export"
#endif
#include SHIPFASTSIM_MODEL_HEADER

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace m = shipfastsim_model;

namespace {

// Run rows [0, n) in chunks the session accepts; inputs/outputs are whole-sample arrays.
void infer_all(const m::Session &session, std::size_t n, std::size_t chunk,
               const std::vector<std::vector<float>> &inputs, std::vector<std::vector<float>> &outputs) {
   const float *in[m::kNumInputs];
   float *out[m::kNumOutputs];
   for (std::size_t start = 0; start < n; start += chunk) {
      const std::size_t rows = std::min(chunk, n - start);
      for (std::size_t i = 0; i < m::kNumInputs; ++i) in[i] = inputs[i].data() + start * m::kInputWidths[i];
      for (std::size_t o = 0; o < m::kNumOutputs; ++o) out[o] = outputs[o].data() + start * m::kOutputWidths[o];
      m::run(session, rows, in, out);
   }
}

} // namespace

int main(int argc, char **argv) {
   if (argc < 5) {
      std::cerr << "usage: " << argv[0] << " WEIGHTS INPUTS.bin OUTPUTS.bin N_ROWS [REPEATS]\n";
      return 2;
   }
   const std::size_t n = std::strtoull(argv[4], nullptr, 10);
   const long repeats = argc > 5 ? std::strtol(argv[5], nullptr, 10) : 0;
   const std::size_t chunk = m::kDynamicBatch ? n : m::kMaxBatch;
   if (!m::kDynamicBatch && n % chunk != 0) {
      std::cerr << "N_ROWS must be a multiple of the fixed batch " << chunk << "\n";
      return 2;
   }
   std::ifstream in_file(argv[2], std::ios::binary);
   std::vector<std::vector<float>> inputs(m::kNumInputs), outputs(m::kNumOutputs);
   for (std::size_t i = 0; i < m::kNumInputs; ++i) {
      inputs[i].resize(n * m::kInputWidths[i]);
      in_file.read(reinterpret_cast<char *>(inputs[i].data()), inputs[i].size() * sizeof(float));
   }
   if (!in_file) {
      std::cerr << "cannot read " << n << " rows of every input from " << argv[2] << "\n";
      return 1;
   }
   for (std::size_t o = 0; o < m::kNumOutputs; ++o) outputs[o].resize(n * m::kOutputWidths[o]);

   auto session = m::make_session(argv[1], chunk);
   infer_all(*session, n, chunk, inputs, outputs);

   std::ofstream out_file(argv[3], std::ios::binary);
   for (const auto &output : outputs)
      out_file.write(reinterpret_cast<const char *>(output.data()), output.size() * sizeof(float));
   if (!out_file) {
      std::cerr << "cannot write " << argv[3] << "\n";
      return 1;
   }

   if (repeats > 0) {
      const auto start = std::chrono::steady_clock::now();
      for (long r = 0; r < repeats; ++r) infer_all(*session, n, chunk, inputs, outputs);
      const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
      std::printf("ns_per_row %.3f\n", elapsed.count() / (double(repeats) * double(n)));
   }
   return 0;
}
