// unit_gate_ir.cpp - the IR of state migration.
#include "jit/unit_gate_ir.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"

namespace distnode::jit {

std::string stateTableName(std::uint32_t unit) {
  return "__distnode_state." + std::to_string(unit);
}

std::string gatedName(const std::string &name) { return name + ".gated"; }

namespace {

llvm::Error fail(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

} // namespace

llvm::Error addUnitGates(llvm::Module &m, const ProgramAnalysis &analysis,
                         const std::vector<RemoteSignature> &functions, llvm::Constant *gates,
                         const std::string &enter_symbol, const std::string &exit_symbol) {
  llvm::LLVMContext &ctx = m.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  llvm::Type *i32 = llvm::Type::getInt32Ty(ctx);
  llvm::FunctionCallee enter = m.getOrInsertFunction(
      enter_symbol, llvm::FunctionType::get(llvm::Type::getInt1Ty(ctx), {ptr, i32}, false));
  llvm::FunctionCallee leave = m.getOrInsertFunction(
      exit_symbol, llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr, i32}, false));

  for (std::uint32_t u = 0; u < analysis.units.size(); ++u) {
    const PlacementUnit &unit = analysis.units[u];
    if (!unit.migratable)
      continue;
    std::vector<llvm::Constant *> addresses;
    for (const StateVar &v : unit.state) {
      llvm::GlobalVariable *gv = m.getNamedGlobal(v.name);
      if (!gv)
        return fail("internal: the analysis names global `" + v.name + "`, the module has none");
      addresses.push_back(gv);
    }
    auto *type = llvm::ArrayType::get(ptr, addresses.size());
    new llvm::GlobalVariable(m, type, /*isConstant=*/true, llvm::GlobalValue::ExternalLinkage,
                             llvm::ConstantArray::get(type, addresses), stateTableName(u));
  }

  for (const RemoteSignature &sig : functions) {
    if (!analysis.units.at(sig.unit).migratable)
      continue;
    llvm::Function *body = m.getFunction(sig.name + ".impl");
    llvm::Function *remote = m.getFunction(sig.name + ".remote");
    if (!body || !remote)
      return fail("internal: `" + sig.name + "` was not rewritten before its gate");
    llvm::FunctionType *type = body->getFunctionType();
    llvm::Function *gated =
        llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, gatedName(sig.name), m);
    gated->setAttributes(body->getAttributes());
    gated->setCallingConv(body->getCallingConv());
    auto *entry = llvm::BasicBlock::Create(ctx, "entry", gated);
    auto *here = llvm::BasicBlock::Create(ctx, "here", gated);
    auto *elsewhere = llvm::BasicBlock::Create(ctx, "elsewhere", gated);
    std::vector<llvm::Value *> args;
    for (llvm::Argument &a : gated->args())
      args.push_back(&a);
    llvm::IRBuilder<> b(entry);
    llvm::Value *unit = b.getInt32(sig.unit);
    b.CreateCondBr(b.CreateCall(enter, {gates, unit}), here, elsewhere);
    for (auto [block, callee] : {std::pair{here, body}, std::pair{elsewhere, remote}}) {
      b.SetInsertPoint(block);
      llvm::CallInst *call = b.CreateCall(type, callee, args);
      call->setAttributes(body->getAttributes());
      call->setCallingConv(body->getCallingConv());
      if (callee == body)
        b.CreateCall(leave, {gates, unit});
      if (type->getReturnType()->isVoidTy())
        b.CreateRetVoid();
      else
        b.CreateRet(call);
    }
  }
  return llvm::Error::success();
}

} // namespace distnode::jit
