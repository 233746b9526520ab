# frozen_string_literal: true

require 'minitest/autorun'
require 'tasker'
require 'fake_step'

module UnitHandlers
  class Succeeds < TaskerCore::StepHandler::Base
    def call(context)
      success(result: { 'doubled' => context.get_input('n') * 2, 'cfg' => config['k'] },
              metadata: { 'lang' => 'ruby' })
    end
  end

  class ReturnsHash
    def call(_context)
      { answer: 42 }
    end
  end

  class ReturnsNil
    def call(_context) = nil
  end

  class Retryable < TaskerCore::StepHandler::Base
    def call(_context)
      raise TaskerCore::Errors::RetryableError.new('try later', retry_after: 5)
    end
  end

  class Permanent < TaskerCore::StepHandler::Base
    def call(_context)
      raise TaskerCore::Errors::PermanentError.new('card declined', error_code: 'DECLINED')
    end
  end

  class Invalid < TaskerCore::StepHandler::Base
    def call(_context)
      raise TaskerCore::Errors::ValidationError.new('bad amount', field: 'amount')
    end
  end

  class Network < TaskerCore::StepHandler::Base
    def call(_context)
      raise TaskerCore::Errors::NetworkError.new('503 from upstream', status_code: 503)
    end
  end

  class Boom < TaskerCore::StepHandler::Base
    def call(_context)
      1 / 0
    end
  end

  class Unimplemented < TaskerCore::StepHandler::Base; end

  class Failure < TaskerCore::StepHandler::Base
    def call(_context)
      failure(message: 'nope', error_type: 'QuotaError', error_code: 'Q1', retryable: true,
              metadata: { 'quota' => 10 })
    end
  end

  class NotJson < TaskerCore::StepHandler::Base
    def call(_context)
      success(result: { 'when' => Object.new })
    end
  end

  class NaN < TaskerCore::StepHandler::Base
    def call(_context)
      { 'x' => [1, Float::NAN] }
    end
  end

  class AltMethod
    def call(_context) = { 'm' => 'call' }
    def other(_context) = { 'm' => 'other' }
  end

  class OwnInitialize
    def initialize
      @x = 7
    end

    def call(_context) = { 'x' => @x }
  end
end

class TestExecutor < Minitest::Test
  def run_handler(target, method: nil, **step_args)
    step = FakeStep.new(**step_args)
    handler = TaskerCore::Registry::ResolvedHandler.new(step.handler_name, target)
    methods = method ? { %w[ns task 1.0.0 step_a] => method } : {}
    TaskerCore::Executor.new({ step.handler_name => handler }, methods).run(step)
    step.outcome
  end

  def test_success_with_metadata_and_config
    o = run_handler(UnitHandlers::Succeeds, context: { 'n' => 21 }, config: { 'k' => 'v' })
    assert o[:success]
    assert_equal({ 'doubled' => 42, 'cfg' => 'v' }, o[:result])
    assert_equal({ 'lang' => 'ruby' }, o[:metadata])
  end

  def test_plain_hash_and_nil_are_success
    assert_equal({ 'answer' => 42 }, run_handler(UnitHandlers::ReturnsHash)[:result])
    assert_equal({}, run_handler(UnitHandlers::ReturnsNil)[:result])
  end

  def test_retryable_error
    o = run_handler(UnitHandlers::Retryable)
    assert_equal ['RetryableError', 'try later', true], o.values_at(:error_type, :message, :retryable)
    assert_equal 5.0, o[:retry_after]
    refute_empty o[:backtrace]
  end

  def test_permanent_error_with_code
    o = run_handler(UnitHandlers::Permanent)
    assert_equal ['PermanentError', 'card declined', false], o.values_at(:error_type, :message, :retryable)
    assert_equal 'DECLINED', o[:error_code] # metadata.error_code, as Tasker stores it
    assert_nil o[:metadata], 'error_code is not custom metadata'
  end

  def test_validation_and_network_errors
    o = run_handler(UnitHandlers::Invalid)
    assert_equal ['ValidationError', false], o.values_at(:error_type, :retryable)
    assert_equal 'amount', o[:metadata]['field']
    o = run_handler(UnitHandlers::Network)
    assert_equal ['NetworkError', true], o.values_at(:error_type, :retryable)
  end

  def test_unexpected_exception_is_retryable_with_backtrace
    o = run_handler(UnitHandlers::Boom)
    assert_equal ['ZeroDivisionError', 'divided by 0', true], o.values_at(:error_type, :message, :retryable)
    assert(o[:backtrace].any? { |l| l.include?('test_executor.rb') })
  end

  def test_missing_call_is_a_failure
    o = run_handler(UnitHandlers::Unimplemented)
    assert_equal 'NotImplementedError', o[:error_type]
    assert_match(/must implement call/, o[:message])
  end

  def test_failure_helper
    o = run_handler(UnitHandlers::Failure)
    assert_equal ['QuotaError', 'nope', true], o.values_at(:error_type, :message, :retryable)
    assert_equal 'Q1', o[:error_code]
    assert_equal({ 'quota' => 10 }, o[:metadata])
  end

  def test_not_serialisable_is_a_permanent_serialization_error
    o = run_handler(UnitHandlers::NotJson)
    assert_equal ['SerializationError', false], o.values_at(:error_type, :retryable)
    assert_match(/when is a Object/, o[:message])
    o = run_handler(UnitHandlers::NaN)
    assert_equal 'SerializationError', o[:error_type]
    assert_match(/x\[1\] is NaN/, o[:message])
  end

  def test_handler_method_and_own_initialize
    assert_equal({ 'm' => 'other' }, run_handler(UnitHandlers::AltMethod, method: 'other')[:result])
    assert_equal({ 'x' => 7 }, run_handler(UnitHandlers::OwnInitialize)[:result])
  end

  def test_lambda_handler
    o = run_handler(->(ctx) { { 'who' => ctx.step_name } })
    assert_equal({ 'who' => 'step_a' }, o[:result])
  end

  def test_unknown_callable
    step = FakeStep.new(handler_name: 'Nope')
    TaskerCore::Executor.new({}).run(step)
    assert_equal ['HandlerNotFound', false], step.outcome.values_at(:error_type, :retryable)
  end

  def test_messages_are_cleaned_for_c
    bad = Class.new { def call(_c) = raise(ArgumentError, "nul\0 and \xFF".dup.force_encoding('BINARY')) }
    o = run_handler(bad)
    refute_includes o[:message], "\0"
    assert o[:message].valid_encoding?
  end
end

class TestExecutorBigIntegers < Minitest::Test
  def test_integers_beyond_64_bits_go_as_text
    step = FakeStep.new(handler_name: 'big')
    handler = TaskerCore::Registry::ResolvedHandler.new('big', ->(_c) { { 'big' => 2**70 } })
    TaskerCore::Executor.new({ 'big' => handler }).run(step)
    assert step.outcome[:success]
    assert step.outcome[:text]
    assert_equal 2**70, step.outcome[:result]['big']
  end
end

module UnitHandlers
  class UsesConfig < TaskerCore::StepHandler::Base
    def call(_context) = { 'cfg' => config['k'] }
  end

  class OwnConfigInit < TaskerCore::StepHandler::Base
    def initialize(config: {})
      super(config: config.merge('extra' => 1))
    end

    def call(_context) = { 'cfg' => config }
  end
end

class TestHandlerConfig < Minitest::Test
  def run_with(target, config)
    step = FakeStep.new(handler_name: 'h', config: config)
    TaskerCore::Executor.new({ 'h' => TaskerCore::Registry::ResolvedHandler.new('h', target) }).run(step)
    step.outcome[:result]
  end

  def test_config_reaches_handlers
    assert_equal({ 'cfg' => 'v' }, run_with(UnitHandlers::UsesConfig, { 'k' => 'v' }))
    assert_equal({ 'cfg' => { 'k' => 'v', 'extra' => 1 } }, run_with(UnitHandlers::OwnConfigInit, { 'k' => 'v' }))
    assert_equal({ 'a' => 1 }, UnitHandlers::UsesConfig.new(config: { 'a' => 1 }).config)
  end
end
