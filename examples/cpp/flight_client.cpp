// A remote ringfeed query from C++ with Arrow Flight C++ directly (no ringfeed library):
// GetFlightInfo for a JSON command, then DoGet of each endpoint's ticket.
//
//   flight_client grpc://127.0.0.1:8815 '{"dataset":"crypto","symbols":"BTCUSDT","timeframe":"1h"}' [TOKEN]
//
// Build against any Arrow C++ with Flight (C++20 for Arrow 26's headers), e.g. the one
// inside the pyarrow wheel: scripts/build_flight_cpp.sh does that. Prints the schema, the
// rows and the sum of `close`, so a test can compare it with the local query.
#include <arrow/api.h>
#include <arrow/flight/client.h>

#include <iomanip>
#include <iostream>
#include <string>

namespace fl = arrow::flight;

static arrow::Status Run(const std::string& uri, const std::string& command,
                         const std::string& token) {
  ARROW_ASSIGN_OR_RAISE(auto location, fl::Location::Parse(uri));
  ARROW_ASSIGN_OR_RAISE(auto client, fl::FlightClient::Connect(location));
  fl::FlightCallOptions options;
  if (!token.empty()) {
    options.headers.emplace_back("authorization", "Bearer " + token);
  }
  auto descriptor = fl::FlightDescriptor::Command(command);
  ARROW_ASSIGN_OR_RAISE(auto info, client->GetFlightInfo(options, descriptor));
  std::shared_ptr<arrow::Schema> schema;
  arrow::ipc::DictionaryMemo memo;
  ARROW_ASSIGN_OR_RAISE(schema, info->GetSchema(&memo));
  std::cout << "schema: " << schema->ToString(false) << "\n";
  int64_t rows = 0;
  double close_sum = 0.0;
  for (const auto& endpoint : info->endpoints()) {
    ARROW_ASSIGN_OR_RAISE(auto stream, client->DoGet(options, endpoint.ticket));
    ARROW_ASSIGN_OR_RAISE(auto table, stream->ToTable());
    rows += table->num_rows();
    auto close = table->GetColumnByName("close");
    if (close) {
      for (const auto& chunk : close->chunks()) {
        const auto& values = static_cast<const arrow::DoubleArray&>(*chunk);
        for (int64_t i = 0; i < values.length(); ++i) {
          if (values.IsValid(i)) close_sum += values.Value(i);
        }
      }
    }
  }
  std::cout << "rows: " << rows << "\n"
            << "close_sum: " << std::setprecision(17) << close_sum << "\n";
  return arrow::Status::OK();
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: flight_client URI JSON_COMMAND [TOKEN]\n";
    return 2;
  }
  arrow::Status st = Run(argv[1], argv[2], argc > 3 ? argv[3] : "");
  if (!st.ok()) {
    std::cerr << "flight_client: " << st.ToString() << "\n";
    return 1;
  }
  return 0;
}
