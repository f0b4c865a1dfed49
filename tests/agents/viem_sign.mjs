// viem (pinned in tests/test_package_agents.py): sign a message and typed data with a fixed key,
// recover the signer, encode and decode a contract call. All deterministic.
import { privateKeyToAccount } from "viem/accounts";
import { encodeFunctionData, decodeFunctionData, parseAbi, keccak256, toHex, recoverMessageAddress, parseEther } from "viem";

const abi = parseAbi(["function transfer(address to, uint256 amount) returns (bool)"]);

export default {
  async fetch(request) {
    const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
    const signature = await account.signMessage({ message: "hello wapo" });
    const recovered = await recoverMessageAddress({ message: "hello wapo", signature });
    const typed = await account.signTypedData({
      domain: { name: "wapo", version: "1", chainId: 1 },
      types: { Mail: [{ name: "to", type: "address" }, { name: "body", type: "string" }] },
      primaryType: "Mail",
      message: { to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", body: "hi" },
    });
    const data = encodeFunctionData({ abi, functionName: "transfer",
      args: ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", parseEther("1.5")] });
    const decoded = decodeFunctionData({ abi, data });
    return Response.json({ address: account.address, signature, recovered, typed, data,
                           decoded: [decoded.functionName, decoded.args[0], decoded.args[1].toString()],
                           hash: keccak256(toHex("wapo")) });
  },
};
