// The main() of every CAF test executable.
#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

int main(int argc, char** argv) {
  return caf::test::main(argc, argv);
}
