// bitcode.cpp - loading and checking an application's bitcode file.
#include "jit/bitcode.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"

namespace distnode::jit {

Program::Program() = default;
Program::Program(Program &&) noexcept = default;
Program &Program::operator=(Program &&) noexcept = default;
Program::~Program() {
  // The module must die before the context that owns its types.
  module.reset();
  context.reset();
}

std::string Program::sha256Hex() const {
  static const char *kDigits = "0123456789abcdef";
  std::string hex;
  for (std::uint8_t b : sha256) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 15]);
  }
  return hex;
}

namespace {

llvm::Error fail(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

// The first line of a (possibly multi-line) LLVM message, without trailing blanks.
std::string firstLine(std::string text) {
  auto nl = text.find('\n');
  if (nl != std::string::npos)
    text.resize(nl);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r'))
    text.pop_back();
  return text;
}

} // namespace

llvm::Expected<Program> loadBitcode(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail(path + ": cannot open: " + buffer.getError().message());

  llvm::StringRef bytes = (*buffer)->getBuffer();
  if (!llvm::isBitcode(reinterpret_cast<const unsigned char *>(bytes.begin()),
                       reinterpret_cast<const unsigned char *>(bytes.end())))
    return fail(path + ": not an LLVM bitcode file; compile C sources with `dist-cc app.c -o " +
                "app.bc`");

  Program program;
  program.path = path;
  auto digest = llvm::SHA256::hash(llvm::arrayRefFromStringRef(bytes));
  std::copy(digest.begin(), digest.end(), program.sha256.begin());
  program.context = std::make_unique<llvm::LLVMContext>();

  auto module = llvm::parseBitcodeFile((*buffer)->getMemBufferRef(), *program.context);
  if (!module)
    return fail(path + ": unreadable bitcode: " + firstLine(llvm::toString(module.takeError())) +
                " (was it written by LLVM 19? use dist-cc)");
  program.module = std::move(*module);

  std::string problems;
  llvm::raw_string_ostream os(problems);
  if (llvm::verifyModule(*program.module, &os))
    return fail(path + ": invalid bitcode: " + firstLine(problems));
  return program;
}

llvm::Error checkHasMain(const Program &program) {
  const llvm::Function *main = program.module->getFunction("main");
  if (!main || main->isDeclaration())
    return fail(program.path +
                ": no function `main` is defined; link the source that defines it into the " +
                "bitcode (dist-cc a.c b.c -o app.bc)");
  if (main->arg_size() > 3 || !main->getReturnType()->isIntegerTy())
    return fail(program.path + ": `main` must be `int main(void)` or `int main(int, char **)`");
  return llvm::Error::success();
}

} // namespace distnode::jit
