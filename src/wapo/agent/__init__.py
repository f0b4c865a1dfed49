"""The agent contract: request payloads, the three handler styles, answers, limits per run."""

from .request import AgentRequest
from .response import AgentResponse, BadAgentAnswer
from .runner import AgentFailed, AgentResult, AgentRun, call_agent

__all__ = ["AgentFailed", "AgentRequest", "AgentResponse", "AgentResult", "AgentRun", "BadAgentAnswer", "call_agent"]
