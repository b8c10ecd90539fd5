// Minimal reproduction of a leak inside libpqxx 6.4.5, the reason for the
// suppression in lsan_suppressions.txt (run by check_pqxx_leak.sh).
//
// connection_base::make_result(PGresult*, query) calls encoding_id() before
// the pqxx::result takes ownership of the PGresult. When the statement is the
// one that finds the server gone, libpq has set the connection to
// CONNECTION_BAD, PQclientEncoding() answers -1 and encoding_id() throws
// broken_connection ("Could not obtain client encoding: not connected."), so
// the PGresult that PQexec returned (216 bytes plus a 2,048-byte block) is
// never PQclear'ed. Every statement path of libpqxx 6.4 goes through
// make_result (exec, exec_params, exec_prepared, pipelines, COPY), so no
// caller can avoid it; libpqxx 7 wraps the PGresult before that call.
//
// Usage: pqxx_lost_connection_leak DATABASE_URL
// Opens a connection, has a second one terminate its backend, then begins a
// transaction on the first (as PgVisitStore::create_partition does after an
// outage). Exit 0 when that threw broken_connection, 1 otherwise; the leak,
// if any, is LeakSanitizer's to report at exit.
#include <chrono>
#include <iostream>
#include <pqxx/pqxx>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: pqxx_lost_connection_leak DATABASE_URL\n";
    return 2;
  }
  try {
    pqxx::connection victim(argv[1]);
    {
      pqxx::connection admin(argv[1]);
      pqxx::nontransaction txn(admin);
      txn.exec("SELECT pg_terminate_backend(" + std::to_string(victim.backendpid()) + ")");
    }
    // The backend sends its FATAL message and closes the socket.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    try {
      pqxx::work txn(victim, "create_partition");
      txn.commit();
    } catch (const pqxx::broken_connection& e) {
      std::cout << "broken_connection: " << e.what() << "\n";
      return 0;
    }
    std::cerr << "the transaction began on a terminated connection\n";
  } catch (const std::exception& e) {
    std::cerr << "unexpected: " << e.what() << "\n";
  }
  return 1;
}
