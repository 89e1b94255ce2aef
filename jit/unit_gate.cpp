// unit_gate.cpp - the gates of migratable placement units.
#include "jit/unit_gate.h"

#include <unordered_map>

namespace distnode::jit {

namespace {

std::atomic<std::size_t> next_id{0};

// This thread's depth of calls in each unit of each UnitGates (tests make several).
std::vector<int> &depths(std::size_t id, std::size_t units) {
  thread_local std::unordered_map<std::size_t, std::vector<int>> all;
  std::vector<int> &d = all[id];
  if (d.size() < units)
    d.resize(units, 0);
  return d;
}

} // namespace

UnitGates::UnitGates(std::vector<bool> gated)
    : gated_(std::move(gated)), active_(new std::atomic<std::int64_t>[gated_.size()]),
      closed_(new std::atomic<std::uint8_t>[gated_.size()]),
      owned_(new std::atomic<std::uint8_t>[gated_.size()]), id_(next_id++) {
  for (std::size_t u = 0; u < gated_.size(); ++u) {
    active_[u] = 0;
    closed_[u] = 0;
    owned_[u] = 1;
  }
}

bool UnitGates::tryEnter(std::uint32_t unit) {
  if (!gated(unit))
    return true;
  int &depth = depths(id_, gated_.size())[unit];
  active_[unit].fetch_add(1, std::memory_order_seq_cst);
  if (depth == 0 && (closed_[unit].load(std::memory_order_seq_cst) ||
                     !owned_[unit].load(std::memory_order_seq_cst))) {
    exit(unit);
    ++depth; // exit() took one off
    return false;
  }
  ++depth;
  return true;
}

void UnitGates::exit(std::uint32_t unit) {
  if (!gated(unit))
    return;
  --depths(id_, gated_.size())[unit];
  if (active_[unit].fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      closed_[unit].load(std::memory_order_seq_cst)) {
    std::lock_guard lock(mu_); // a drain may be about to wait
    cv_.notify_all();
  }
}

bool UnitGates::insideOnThisThread(std::uint32_t unit) const {
  return gated(unit) && depths(id_, gated_.size())[unit] > 0;
}

bool UnitGates::closeAndDrain(std::uint32_t unit, std::chrono::milliseconds timeout) {
  if (!gated(unit))
    return true;
  closed_[unit].store(1, std::memory_order_seq_cst);
  std::unique_lock lock(mu_);
  bool drained = cv_.wait_for(lock, timeout,
                              [&] { return active_[unit].load(std::memory_order_seq_cst) == 0; });
  if (!drained) {
    closed_[unit].store(0, std::memory_order_seq_cst);
    cv_.notify_all();
  }
  return drained;
}

void UnitGates::open(std::uint32_t unit) {
  if (!gated(unit))
    return;
  std::lock_guard lock(mu_);
  closed_[unit].store(0, std::memory_order_seq_cst);
  cv_.notify_all();
}

void UnitGates::waitOpen(std::uint32_t unit) {
  if (!gated(unit))
    return;
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return closed_[unit].load(std::memory_order_seq_cst) == 0; });
}

void UnitGates::setOwned(std::uint32_t unit, bool owned) {
  if (gated(unit))
    owned_[unit].store(owned ? 1 : 0, std::memory_order_seq_cst);
}

bool UnitGates::closed(std::uint32_t unit) const {
  return gated(unit) && closed_[unit].load(std::memory_order_seq_cst);
}

std::int64_t UnitGates::active(std::uint32_t unit) const {
  return gated(unit) ? active_[unit].load(std::memory_order_seq_cst) : 0;
}

extern "C" bool distUnitEnter(UnitGates *gates, std::uint32_t unit) {
  return gates->tryEnter(unit);
}

extern "C" void distUnitExit(UnitGates *gates, std::uint32_t unit) { gates->exit(unit); }

} // namespace distnode::jit
