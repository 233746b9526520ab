# frozen_string_literal: true

require 'minitest/autorun'
require 'tasker'
require 'fake_step'

class TestStepContext < Minitest::Test
  def context(**args)
    TaskerCore::StepContext.new(FakeStep.new(**args))
  end

  def test_input_and_config
    c = context(context: { 'n' => 6, 'nested' => { 'a' => 1 } }, config: { 'ms' => 5 })
    assert_equal 6, c.get_input('n')
    assert_equal 6, c.get_input(:n)
    assert_equal 'dflt', c.get_input_or('missing', 'dflt')
    assert_equal({ 'a' => 1 }, c.input['nested'])
    assert_equal 5, c.get_config(:ms)
    assert_equal({ 'ms' => 5 }, c.step_config)
  end

  def test_dependencies
    deps = { 'fetch' => { 'user' => { 'id' => 7 }, 'items' => [{ 'sku' => 'a' }] }, 'other' => { 'value' => 3 } }
    c = context(dependencies: deps, parents: ['fetch'])
    assert_equal ['fetch'], c.parents
    assert_equal deps['fetch'], c.get_dependency_result('fetch')
    assert_equal 7, c.get_dependency_field('fetch', 'user', 'id')
    assert_equal 7, c.get_dependency_field(:fetch, %w[user id])
    assert_equal 'a', c.get_dependency_field('fetch', 'items', 0, 'sku')
    assert_nil c.get_dependency_field('fetch', 'user', 'nope', 'deeper')
    assert_nil c.get_dependency_result('absent')
  end

  def test_retry_info
    c = context(attempt: 1, max_attempts: 3)
    assert_equal [1, 0, 2], [c.attempt, c.retry_count, c.max_retries]
    refute c.is_retry?
    refute c.is_last_retry?
    c = context(attempt: 3, max_attempts: 3)
    assert c.is_retry?
    assert c.is_last_retry?
  end

  def test_identity_and_logger
    step = FakeStep.new
    c = TaskerCore::StepContext.new(step)
    assert_equal %w[task-1 step-1 corr-1 step_a ns task 1.0.0],
                 [c.task_uuid, c.step_uuid, c.correlation_id, c.step_name, c.namespace_name, c.task_name,
                  c.task_version]
    c.logger.info('hello')
    c.logger.warn { 'from a block' }
    c.logger.debug('below the default level')
    assert_equal [[2, 'hello'], [1, 'from a block']], step.logs
    assert c.remaining_ms.positive?
  end
end
